"""Offline stand-in for rules_cc: forwards to Bazel 4's native C++ rules.

Debian's bazel-bootstrap (Bazel 4.2.3) would download rules_cc from the
network; its bazel-rules-cc package is too new for it. configure.py points
--override_repository=rules_cc here.
"""

def cc_library(**kwargs):
    native.cc_library(**kwargs)

def cc_binary(**kwargs):
    native.cc_binary(**kwargs)

def cc_test(**kwargs):
    native.cc_test(**kwargs)

def cc_import(**kwargs):
    native.cc_import(**kwargs)

def cc_toolchain(**kwargs):
    native.cc_toolchain(**kwargs)

def cc_toolchain_suite(**kwargs):
    native.cc_toolchain_suite(**kwargs)

def objc_library(**kwargs):
    native.objc_library(**kwargs)
