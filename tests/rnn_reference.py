"""Independent NumPy references of the recurrent cells (no Keras, no nas_tf layers).

``nas_cell_step`` transcribes the equations of ``tf.contrib.rnn.NASCell`` /
``tfa.rnn.NASCell`` (PAPERS.md 1.11) line by line; ``tree_cell_step``
evaluates a ``nas_rnn`` arch dict recursively from the root, the way the paper
describes the tree. Both take weights in TF Addons' order.
"""

import numpy as np

# The worked example of Zoph & Le (2017), section 3.4 (N = 2), as a nas_rnn arch.
PAPER_EXAMPLE = {
    "space": "nas_rnn",
    "base": 2,
    "nodes": [
        {"combination": "add", "activation": "tanh"},
        {"combination": "elem_mult", "activation": "relu"},
        {"combination": "elem_mult", "activation": "sigmoid"},
    ],
    "cell_inject": {"combination": "add", "activation": "relu"},
    "cell_output_node": 1,
    "cell_inject_node": 0,
}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def relu(x):
    return np.maximum(x, 0.0)


def nas_cell_step(x, c_prev, m_prev, recurrent_kernel, kernel, bias=None, projection_weights=None):
    """One step of the NAS cell; returns (output, [new_c, new_m]) in float64."""
    x, c_prev, m_prev = (np.asarray(a, np.float64) for a in (x, c_prev, m_prev))
    m_mat = m_prev @ recurrent_kernel
    if bias is not None:
        m_mat = m_mat + bias
    i_mat = x @ kernel
    m_s = np.split(m_mat, 8, axis=1)
    i_s = np.split(i_mat, 8, axis=1)
    l1_0 = sigmoid(i_s[0] + m_s[0])
    l1_1 = relu(i_s[1] + m_s[1])
    l1_2 = sigmoid(i_s[2] + m_s[2])
    l1_3 = relu(i_s[3] * m_s[3])
    l1_4 = np.tanh(i_s[4] + m_s[4])
    l1_5 = sigmoid(i_s[5] + m_s[5])
    l1_6 = np.tanh(i_s[6] + m_s[6])
    l1_7 = sigmoid(i_s[7] + m_s[7])
    l2_0 = np.tanh(l1_0 * l1_1)
    l2_1 = np.tanh(l1_2 + l1_3)
    l2_2 = np.tanh(l1_4 * l1_5)
    l2_3 = sigmoid(l1_6 + l1_7)
    l2_0 = np.tanh(l2_0 + c_prev)
    new_c = l2_0 * l2_1
    l3_1 = np.tanh(l2_2 + l2_3)
    new_m = np.tanh(new_c * l3_1)
    if projection_weights is not None:
        new_m = new_m @ projection_weights
    return new_m, [new_c, new_m]


_ACT = {"identity": lambda v: v, "tanh": np.tanh, "sigmoid": sigmoid, "relu": relu}


def _comb(kind, a, b):
    return a + b if kind == "add" else a * b


def tree_cell_step(arch, x, c_prev, m_prev, recurrent_kernel, kernel, bias=None):
    """One step of the tree cell of ``arch`` (a nas_rnn arch dict); returns (h, c)."""
    base = arch["base"]
    nodes = arch["nodes"]
    x, c_prev, m_prev = (np.asarray(a, np.float64) for a in (x, c_prev, m_prev))
    m_mat = m_prev @ recurrent_kernel
    if bias is not None:
        m_mat = m_mat + bias
    x_blocks = np.split(x @ kernel, base, axis=1)
    m_blocks = np.split(m_mat, base, axis=1)
    # Children of every internal node, found level by level from the leaves.
    children, level = {}, list(range(base))
    next_id = base
    while len(level) > 1:
        parents = []
        for a, b in zip(level[0::2], level[1::2]):
            children[next_id] = (a, b)
            parents.append(next_id)
            next_id += 1
        level = parents
    root = level[0]
    pre, out = {}, {}

    def value(k):
        if k in out:
            return out[k]
        if k in children:
            a, b = children[k]
            pre[k] = _comb(nodes[k]["combination"], value(a), value(b))
        else:
            pre[k] = _comb(nodes[k]["combination"], x_blocks[k], m_blocks[k])
        result = _ACT[nodes[k]["activation"]](pre[k])
        if k == arch["cell_inject_node"]:
            inj = arch["cell_inject"]
            result = _ACT[inj["activation"]](_comb(inj["combination"], result, c_prev))
        out[k] = result
        return result

    h = value(root)
    for k in range(2 * base - 1):  # every node is evaluated (the cell node may hang off the root path)
        value(k)
    return h, pre[arch["cell_output_node"]]
