"""Repository rule exposing the installed TensorFlow (headers + libtensorflow_framework).

Like the TensorFlow custom-op template: `python configure.py` writes
`--repo_env=TF_PACKAGE_DIR=...` (the directory of the `tensorflow` package
whose tf.sysconfig flags the build uses) into .bazelrc.configure; this rule
links its include/ directory and framework library into @local_config_tf.
"""

def _tf_configure_impl(ctx):
    tf_dir = ctx.os.environ.get("TF_PACKAGE_DIR", "")
    if not tf_dir:
        fail("TF_PACKAGE_DIR is not set: run `python configure.py` first (it writes .bazelrc.configure)")
    lib = ctx.os.environ.get("TF_SHARED_LIBRARY_NAME", "libtensorflow_framework.so.2")
    ctx.symlink(tf_dir + "/include", "include")
    ctx.symlink(tf_dir + "/" + lib, lib)
    ctx.file("BUILD", """
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "tf_header_lib",
    hdrs = glob(["include/**"]),
    includes = ["include"],
)

cc_library(
    name = "libtensorflow_framework",
    srcs = ["{lib}"],
)
""".format(lib = lib))

tf_configure = repository_rule(
    implementation = _tf_configure_impl,
    environ = ["TF_PACKAGE_DIR", "TF_SHARED_LIBRARY_NAME"],
    local = True,
)
