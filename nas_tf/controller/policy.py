"""The LSTM controller (policy network) shared by every search space.

One :class:`Controller` reads any space's
:class:`~nas_tf.spaces.decisions.DecisionList`: it takes one LSTM step per
decision, feeding the embedding of the previous action as the next input
(Zoph & Le 2017, section 3.1). Categorical decisions are sampled by one softmax
head per decision type; skip decisions use the set-selection attention of the
paper (section 3.3) on the score

    q_j = v^T tanh(W_prev h_j + W_curr h_i),

one independent 0/1 choice for every earlier anchor ``j``; select decisions
use a softmax over the same scores (ENAS). Logits (and scores) can be divided
by a temperature and squashed with ``C * tanh`` (ENAS): ``q' = C tanh(q / T)``.

**Skip probability** (``skip_form``). The NAS paper samples each skip with
``P = sigmoid(q')`` (``"sigmoid"``); the ENAS authors' macro controller samples
it from a two-way softmax over the logits ``[-q', q']``, so
``P = sigmoid(2 q')`` (``"softmax"``, the default). Without the tanh squashing
the two are the same family (``v`` absorbs the factor 2); with it they bound
``P`` differently: ``C = 1.5`` (the ENAS macro preset) caps ``P`` in
``[0.18, 0.82]`` under ``"sigmoid"`` and in ``[0.047, 0.953]`` under
``"softmax"``. The ENAS skip penalty reads ``sigmoid(q')`` in both forms, as
the authors' code does (docs/fidelity.md).

**Options of the authors' controllers** (off by default; docs/fidelity.md):

* ``tanh_reduce`` / ``bias_init`` / ``logit_offsets``: the ENAS micro op
  logits ``(C / op_tanh_reduce) tanh((h W + b) / T) + b_fixed`` with the
  learned bias ``b`` initialised towards separable convs and the constant
  ``b_fixed`` on the normal cell (:func:`enas_micro_op_options`);
* ``tied_heads``: logits ``h E^T`` tied to the head's embedding ``E``
  (``enas_lm``'s activation logits);
* ``distance_prior`` and ``distance_scaled_input``: for a select decision
  among ``n`` candidates, candidate ``j`` (``n - j`` nodes back) loses
  ``(n - j)^2 / distance_prior`` from its logit and, once chosen, is fed
  to the next step divided by ``0.1 + n - j`` (``enas_lm``:
  ``distance_prior=6``).

Sampling and scoring run the same unrolled computation inside one
``tf.function`` per decision list (static shapes, traced once per list), so the
log-probability of a sampled architecture equals the log-probability that
:meth:`Controller.log_prob` computes for its tokens.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import keras
import tensorflow as tf

from nas_tf.spaces.decisions import Anchor, Categorical, DecisionList, Select, Skip

SKIP_FORMS = ("softmax", "sigmoid")


@keras.saving.register_keras_serializable(package="nas_tf")
class Controller(keras.Model):
    """Autoregressive LSTM policy over a search space's decisions.

    Args:
        types: ``{decision type: number of choices}`` of the categorical
            decisions it will sample (``DecisionList.types`` gives it). The
            weights depend only on these types, not on the number of
            decisions, so one controller serves every depth of a space.
        lstm_units: hidden units per LSTM layer (35 in Zoph & Le).
        lstm_layers: stacked LSTM layers (2 in Zoph & Le).
        init_range: all weights start uniform in ``[-init_range, init_range]``.
        temperature: if set, logits are divided by it.
        tanh_constant: if set, logits become ``tanh_constant * tanh(logits)``.
        seed: seed of the weight initialisation (None: Keras' global seed).
        skip_form: how a skip score ``q'`` becomes a probability:
            ``"softmax"`` (``sigmoid(2 q')``, the ENAS authors' two-way
            softmax over ``[-q', q']``) or ``"sigmoid"`` (``sigmoid(q')``,
            the NAS paper's anchor points).
        tanh_reduce: ``{decision type: r}``: that head squashes with
            ``tanh_constant / r`` instead of ``tanh_constant`` (the ENAS micro
            ``op_tanh_reduce``; needs ``tanh_constant``).
        bias_init: ``{decision type: values}``: initial value of that head's
            learned logit bias, one per choice (ENAS micro: 10 on the
            separable convs, 0 elsewhere).
        logit_offsets: ``{decision-name prefix: values}``: constants added to
            the logits of every categorical decision whose name starts with
            the prefix, after the squashing (ENAS micro: ``+0.25`` on the
            separable convs, ``-0.25`` elsewhere, normal cell only).
        tied_heads: decision types whose logits are ``h E^T``, ``E`` the
            head's embedding (no softmax kernel or bias; ``enas_lm`` ties the
            activation head).
        distance_prior: if set, a select decision's logit for the candidate
            ``d`` nodes back loses ``d^2 / distance_prior`` after the
            squashing (``enas_lm``: 6).
        distance_scaled_input: feed a chosen select candidate ``d`` nodes
            back to the next step divided by ``0.1 + d`` (``enas_lm``).

    Example:

    >>> from nas_tf.spaces import NASCNNSpace
    >>> space = NASCNNSpace(num_layers=3)
    >>> controller = Controller({t: len(c) for t, c in space.decisions.types.items()})
    >>> tokens, log_probs, entropies = controller.sample(space.decisions, num=4, seed=[0, 1])
    >>> tokens.shape
    TensorShape([4, 12])
    """

    def __init__(
        self,
        types: Mapping[str, int],
        lstm_units: int = 35,
        lstm_layers: int = 2,
        init_range: float = 0.08,
        temperature: float | None = None,
        tanh_constant: float | None = None,
        seed: int | None = None,
        skip_form: str = "softmax",
        tanh_reduce: Mapping[str, float] | None = None,
        bias_init: Mapping[str, Sequence[float]] | None = None,
        logit_offsets: Mapping[str, Sequence[float]] | None = None,
        tied_heads: Sequence[str] = (),
        distance_prior: float | None = None,
        distance_scaled_input: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(types, Mapping):
            raise TypeError(f"types must map decision type -> number of choices, got {types!r}")
        for t, k in types.items():
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ValueError(f"types[{t!r}] must be a positive number of choices, got {k!r}")
        if lstm_units < 1 or lstm_layers < 1:
            raise ValueError(f"lstm_units and lstm_layers must be >= 1, got {lstm_units}, {lstm_layers}")
        if init_range <= 0:
            raise ValueError(f"init_range must be > 0, got {init_range}")
        if temperature is not None and temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if tanh_constant is not None and tanh_constant <= 0:
            raise ValueError(f"tanh_constant must be > 0, got {tanh_constant}")
        if skip_form not in SKIP_FORMS:
            raise ValueError(f"skip_form must be one of {list(SKIP_FORMS)}, got {skip_form!r}")
        if distance_prior is not None and not distance_prior > 0:
            raise ValueError(f"distance_prior must be > 0 (or None: off), got {distance_prior!r}")
        self.types = {str(t): int(k) for t, k in sorted(types.items())}
        self.tanh_reduce = _per_type("tanh_reduce", tanh_reduce, self.types)
        for t, r in self.tanh_reduce.items():
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not r > 0:
                raise ValueError(f"tanh_reduce[{t!r}] must be a number > 0, got {r!r}")
        self.tanh_reduce = {t: float(r) for t, r in self.tanh_reduce.items()}
        if self.tanh_reduce and tanh_constant is None:
            raise ValueError(f"tanh_reduce={self.tanh_reduce} divides tanh_constant, which is not set")
        self.bias_init = {
            t: _values(f"bias_init[{t!r}]", v, self.types[t])
            for t, v in _per_type("bias_init", bias_init, self.types).items()
        }
        self.logit_offsets = {}
        for prefix, values in dict(logit_offsets or {}).items():
            if not isinstance(prefix, str) or not prefix:
                raise ValueError(f"logit_offsets: keys must be non-empty decision-name prefixes, got {prefix!r}")
            self.logit_offsets[prefix] = _values(f"logit_offsets[{prefix!r}]", values, None)
        if isinstance(tied_heads, str):
            raise ValueError(f"tied_heads must be a list of decision types, got the string {tied_heads!r}")
        self.tied_heads = tuple(sorted(_per_type("tied_heads", {t: True for t in tied_heads}, self.types)))
        both = sorted(set(self.tied_heads) & set(self.bias_init))
        if both:
            raise ValueError(f"bias_init: tied heads {both} have no logit bias (tied_heads={list(self.tied_heads)})")
        self.lstm_units = int(lstm_units)
        self.lstm_layers = int(lstm_layers)
        self.init_range = float(init_range)
        self.temperature = temperature
        self.tanh_constant = tanh_constant
        self.seed = seed
        self.skip_form = skip_form
        self.distance_prior = None if distance_prior is None else float(distance_prior)
        self.distance_scaled_input = bool(distance_scaled_input)
        self._seed_generator = keras.random.SeedGenerator(seed) if seed is not None else None
        self._functions: dict = {}
        self.built_controller = False
        self.build_controller()

    def _init(self):
        return keras.initializers.RandomUniform(-self.init_range, self.init_range, seed=self._seed_generator)

    def build_controller(self) -> None:
        """Creates every weight (they do not depend on the decision list)."""
        h = self.lstm_units
        self.cells = [
            keras.layers.LSTMCell(
                h,
                kernel_initializer=self._init(),
                recurrent_initializer=self._init(),
                bias_initializer=self._init(),
                unit_forget_bias=False,
                name=f"lstm_{i}",
            )
            for i in range(self.lstm_layers)
        ]
        for cell in self.cells:
            cell.build((None, h))
        self.start_embedding = self.add_weight(shape=(1, h), initializer=self._init(), name="start_embedding")
        self.heads = {}
        for t, k in self.types.items():
            safe = "".join(c if c.isalnum() or c == "_" else "_" for c in t)
            if t in self.tied_heads:  # logits = h E^T: no kernel, no bias
                embedding = self.add_weight(shape=(k, h), initializer=self._init(), name=f"{safe}_embedding")
                self.heads[t] = (None, None, embedding)
                continue
            bias_init = keras.initializers.Constant(self.bias_init[t]) if t in self.bias_init else self._init()
            self.heads[t] = (
                self.add_weight(shape=(h, k), initializer=self._init(), name=f"{safe}_softmax_kernel"),
                self.add_weight(shape=(k,), initializer=bias_init, name=f"{safe}_softmax_bias"),
                self.add_weight(shape=(k, h), initializer=self._init(), name=f"{safe}_embedding"),
            )
        self.w_prev = self.add_weight(shape=(h, h), initializer=self._init(), name="attention_w_prev")
        self.w_curr = self.add_weight(shape=(h, h), initializer=self._init(), name="attention_w_curr")
        self.attention_v = self.add_weight(shape=(h, 1), initializer=self._init(), name="attention_v")
        self.built = True
        self.built_controller = True

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            types=dict(self.types),
            lstm_units=self.lstm_units,
            lstm_layers=self.lstm_layers,
            init_range=self.init_range,
            temperature=self.temperature,
            tanh_constant=self.tanh_constant,
            seed=self.seed,
            **self.options(),
        )
        return config

    def options(self) -> dict:
        """The sampling options (JSON-able): what a search records of its controller."""
        return {
            "skip_form": self.skip_form,
            "tanh_reduce": dict(self.tanh_reduce),
            "bias_init": {t: list(v) for t, v in self.bias_init.items()},
            "logit_offsets": {p: list(v) for p, v in self.logit_offsets.items()},
            "tied_heads": list(self.tied_heads),
            "distance_prior": self.distance_prior,
            "distance_scaled_input": self.distance_scaled_input,
        }

    # ------------------------------------------------------------------ core

    def _shape_logits(self, logits, reduce: float = 1.0):
        if self.temperature is not None:
            logits = logits / self.temperature
        if self.tanh_constant is not None:
            logits = (self.tanh_constant / reduce) * tf.tanh(logits)
        return logits

    def _offsets(self, decision: Categorical):
        """The constant logit offsets of ``decision`` (None if no prefix matches)."""
        matches = [p for p in self.logit_offsets if decision.name.startswith(p)]
        if not matches:
            return None
        values = self.logit_offsets[max(matches, key=len)]
        if len(values) != decision.num_choices:
            raise ValueError(
                f"logit_offsets[{max(matches, key=len)!r}] has {len(values)} values but decision "
                f"{decision.name!r} has {decision.num_choices} choices"
            )
        return tf.constant(values, tf.float32)

    def _check(self, decisions: DecisionList) -> None:
        for t, choices in decisions.types.items():
            if t not in self.types:
                raise ValueError(f"decision type {t!r} has no softmax head in this controller (heads: {list(self.types)})")
            if len(choices) != self.types[t]:
                raise ValueError(
                    f"decision type {t!r} has {len(choices)} choices but the controller head has {self.types[t]}"
                )
        for d in decisions.decisions:
            if isinstance(d, Categorical):
                self._offsets(d)  # a prefix whose values do not fit the decision is an error now, not at trace

    def _lstm_step(self, x, states):
        new_states = []
        for cell, state in zip(self.cells, states):
            x, state = cell(x, state)
            new_states.append(state)
        return x, new_states

    def _run(self, decisions: DecisionList, batch: int, tokens=None, seed=None, stats=None, skip_target=0.5):
        """Unrolls the controller over ``decisions``.

        With ``tokens`` (int32 ``[batch, num_tokens]``) it scores them (teacher
        forcing); otherwise it samples with the stateless ``seed`` (int64 [2]).
        Returns (tokens, log_probs [batch], entropies [batch]). If ``stats`` is
        a dict it also receives ``skip_kl`` (per architecture, the mean over
        skip decisions of the summed KL divergence between each skip
        probability and ``skip_target``; the ENAS skip penalty) and
        ``num_skips`` (chosen skips per architecture).
        """
        h = self.lstm_units
        zeros = tf.zeros((batch, h))
        states = [[zeros, zeros] for _ in self.cells]
        start = tf.tile(self.start_embedding, [batch, 1])
        x = start
        anchors, anchor_keys = [], []
        out, log_prob, entropy = [], tf.zeros((batch,)), tf.zeros((batch,))
        skip_kls, num_skips = [], tf.zeros((batch,))
        for step, (d, offset) in enumerate(zip(decisions.decisions, decisions.offsets)):
            step_seed = None if seed is None else tf.random.experimental.stateless_fold_in(seed, step)
            out_h, states = self._lstm_step(x, states)
            if isinstance(d, Categorical):
                kernel, bias, embedding = self.heads[d.type]
                if kernel is None:  # tied head
                    logits = tf.matmul(out_h, embedding, transpose_b=True)
                else:
                    logits = tf.matmul(out_h, kernel) + bias
                logits = self._shape_logits(logits, self.tanh_reduce.get(d.type, 1.0))
                offsets = self._offsets(d)
                if offsets is not None:
                    logits = logits + offsets
                if tokens is None:
                    action = tf.cast(tf.random.stateless_categorical(logits, 1, seed=step_seed)[:, 0], tf.int32)
                else:
                    action = tokens[:, offset]
                log_sm = tf.nn.log_softmax(logits)
                log_prob += tf.gather(log_sm, action, batch_dims=1)
                entropy += -tf.reduce_sum(tf.exp(log_sm) * log_sm, axis=-1)
                x = tf.gather(embedding, action)
                out.append(action[:, None])
            elif isinstance(d, (Skip, Select)):
                n, first = d.num_candidates, getattr(d, "first_candidate", 0)
                if n > 0:
                    keys = tf.stack(anchor_keys[first : first + n], axis=1)  # [batch, n, h]
                    query = tf.matmul(out_h, self.w_curr)[:, None, :]
                    scores = tf.squeeze(tf.matmul(tf.tanh(keys + query), self.attention_v), -1)  # [batch, n]
                    scores = self._shape_logits(scores)
                    values = tf.stack(anchors[first : first + n], axis=1)
                if isinstance(d, Skip):
                    if n > 0:
                        # The Bernoulli logit of a skip: 2 q' (two-way softmax over [-q', q']) or q'.
                        logit = 2.0 * scores if self.skip_form == "softmax" else scores
                        if tokens is None:
                            u = tf.random.stateless_uniform((batch, n), seed=step_seed)
                            bits = tf.cast(u < tf.sigmoid(logit), tf.int32)
                        else:
                            bits = tokens[:, offset : offset + n]
                        fbits = tf.cast(bits, scores.dtype)
                        # The ENAS skip penalty reads sigmoid(q') in either form (the authors' code).
                        kl_p1, kl_p0 = tf.math.log_sigmoid(scores), tf.math.log_sigmoid(-scores)
                        p1 = tf.exp(kl_p1)
                        skip_kls.append(
                            tf.reduce_sum(
                                p1 * (kl_p1 - math.log(skip_target))
                                + (1.0 - p1) * (kl_p0 - math.log(1.0 - skip_target)),
                                axis=-1,
                            )
                        )
                        log_p1, log_p0 = tf.math.log_sigmoid(logit), tf.math.log_sigmoid(-logit)
                        num_skips += tf.reduce_sum(fbits, axis=-1)
                        log_prob += tf.reduce_sum(fbits * log_p1 + (1.0 - fbits) * log_p0, axis=-1)
                        entropy += -tf.reduce_sum(tf.exp(log_p1) * log_p1 + tf.exp(log_p0) * log_p0, axis=-1)
                        # Next input: mean of the chosen anchors (ENAS macro controller).
                        x = tf.reduce_sum(fbits[:, :, None] * values, axis=1) / (
                            1.0 + tf.reduce_sum(fbits, axis=1, keepdims=True)
                        )
                        out.append(bits)
                    else:
                        x = start
                else:
                    distance = tf.range(n, 0, -1, dtype=scores.dtype)  # candidate j is n - j nodes back
                    if self.distance_prior is not None:
                        scores = scores - tf.square(distance) / self.distance_prior
                    if tokens is None:
                        action = tf.cast(tf.random.stateless_categorical(scores, 1, seed=step_seed)[:, 0], tf.int32)
                    else:
                        action = tokens[:, offset]
                    log_sm = tf.nn.log_softmax(scores)
                    log_prob += tf.gather(log_sm, action, batch_dims=1)
                    entropy += -tf.reduce_sum(tf.exp(log_sm) * log_sm, axis=-1)
                    x = tf.gather(values, action, batch_dims=1)
                    if self.distance_scaled_input:
                        x = x / (0.1 + tf.gather(distance, action))[:, None]
                    out.append(action[:, None])
            elif isinstance(d, Anchor):
                x = start
            else:  # pragma: no cover - DecisionList validates kinds
                raise TypeError(f"unknown decision kind {type(d).__name__}")
            if getattr(d, "anchor", None) is not None:
                anchors.append(tf.zeros_like(out_h) if getattr(d, "zero_value", False) else out_h)
                anchor_keys.append(tf.matmul(out_h, self.w_prev))
        result = tf.concat(out, axis=1) if out else tf.zeros((batch, 0), tf.int32)
        if stats is not None:
            stats["skip_kl"] = tf.add_n(skip_kls) / len(skip_kls) if skip_kls else tf.zeros((batch,))
            stats["num_skips"] = num_skips
        return result, log_prob, entropy

    def _function(self, decisions: DecisionList, kind: str):
        key = (decisions.signature(), kind)
        fn = self._functions.get(key)
        if fn is None:
            self._check(decisions)
            if kind == "sample":

                def sample(num, seed):
                    return self._run(decisions, num, seed=seed)

                fn = tf.function(sample, reduce_retracing=True)
            else:

                def score(tokens):
                    return self._run(decisions, tf.shape(tokens)[0], tokens=tokens)

                fn = tf.function(
                    score, input_signature=[tf.TensorSpec((None, decisions.num_tokens), tf.int32)]
                )
            self._functions[key] = fn
        return fn

    # ------------------------------------------------------------------ API

    def sample(self, decisions: DecisionList, num: int, seed: Sequence[int]):
        """Samples ``num`` architectures.

        Args:
            decisions: the space's decision list.
            num: how many architectures.
            seed: two integers; the same seed gives the same samples.

        Returns:
            ``(tokens, log_probs, entropies)``: int32 ``[num, num_tokens]``,
            float ``[num]``, float ``[num]``.
        """
        fn = self._function(decisions, "sample")
        return fn(int(num), tf.cast(tf.convert_to_tensor(seed), tf.int64))

    def log_prob(self, decisions: DecisionList, tokens):
        """Log-probabilities and entropies of given token vectors (differentiable).

        Args:
            decisions: the space's decision list.
            tokens: int ``[num, num_tokens]``.

        Returns:
            ``(log_probs, entropies)``, each float ``[num]``.
        """
        fn = self._function(decisions, "score")
        _, log_prob, entropy = fn(tf.convert_to_tensor(tokens, dtype=tf.int32))
        return log_prob, entropy

    def call(self, tokens):  # pragma: no cover - the controller is driven by sample/log_prob
        raise NotImplementedError("use Controller.sample(decisions, num, seed) or Controller.log_prob(decisions, tokens)")


def controller_for(decisions: DecisionList, **kwargs) -> Controller:
    """Builds a controller with one head per categorical type of ``decisions``."""
    return Controller({t: len(c) for t, c in decisions.types.items()}, **kwargs)


def _per_type(option: str, mapping, types: Mapping[str, int]) -> dict:
    """``mapping`` as a dict whose keys are all decision types of the controller."""
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise ValueError(f"{option} must map decision type -> value, got {mapping!r}")
    unknown = sorted(str(t) for t in mapping if t not in types)
    if unknown:
        raise ValueError(f"{option}: unknown decision types {unknown} (the controller's types: {list(types)})")
    return dict(mapping)


def _values(option: str, values, length: int | None) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{option} must be a list of numbers, got {values!r}") from None
    if not out or not all(math.isfinite(v) for v in out):
        raise ValueError(f"{option} must be a non-empty list of finite numbers, got {values!r}")
    if length is not None and len(out) != length:
        raise ValueError(f"{option} has {len(out)} values but the head has {length} choices")
    return out


# The ENAS micro controller's op logits (PAPERS.md 3.2.2; melodyguan/enas
# micro_controller.py): learned bias initialised to 10 on the separable convs,
# squashing constant tanh_constant / 2.5, fixed +-0.25 on the normal cell.
ENAS_OP_BIAS = 10.0
ENAS_OP_TANH_REDUCE = 2.5
ENAS_NORMAL_OP_OFFSET = 0.25


def enas_micro_op_options(
    ops: Sequence[str], op_tanh_reduce: float = ENAS_OP_TANH_REDUCE, op_bias: bool = True, op_type: str = "op"
) -> dict:
    """Controller options giving the ENAS micro op logits of the authors' code.

    The authors compute an op's logits as
    ``(C / op_tanh_reduce) * tanh((h W + b) / T) (+ b_fixed)``, with the learned
    bias ``b`` initialised to 10 on the separable convs (0 on the other ops)
    and, on the normal cell only, the constant ``b_fixed`` = +0.25 on the
    separable convs and -0.25 on the others: both favour separable convs at
    the start of the search.

    Args:
        ops: the space's op names in token order (``EnasMicroSpace.ops``);
            the separable convs are the names that start with ``sep_conv``.
        op_tanh_reduce: divisor of the op head's tanh constant (1: none).
        op_bias: add the learned-bias initialisation and the normal-cell
            offsets.
        op_type: the decision type of the op head.

    Returns:
        Keyword arguments of :class:`Controller`.

    Example:

    >>> options = enas_micro_op_options(("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity"))
    >>> options["tanh_reduce"], options["bias_init"]
    ({'op': 2.5}, {'op': [10.0, 10.0, 0.0, 0.0, 0.0]})
    >>> options["logit_offsets"]
    {'normal.': [0.25, 0.25, -0.25, -0.25, -0.25]}
    """
    if isinstance(op_tanh_reduce, bool) or not isinstance(op_tanh_reduce, (int, float)) or not op_tanh_reduce > 0:
        raise ValueError(f"op_tanh_reduce must be a number > 0, got {op_tanh_reduce!r}")
    ops = tuple(ops)
    options: dict = {}
    if op_tanh_reduce != 1:
        options["tanh_reduce"] = {op_type: float(op_tanh_reduce)}
    if op_bias:
        sep = [str(o).startswith("sep_conv") for o in ops]
        options["bias_init"] = {op_type: [ENAS_OP_BIAS if s else 0.0 for s in sep]}
        options["logit_offsets"] = {"normal.": [ENAS_NORMAL_OP_OFFSET if s else -ENAS_NORMAL_OP_OFFSET for s in sep]}
    return options


def saturate_skip_scores(controller: Controller, sign: float = 1.0, magnitude: float = 10.0) -> None:
    """Sets the weights so that every skip score ``q`` is a large number of sign ``sign``.

    A diagnostic (tests, ``scripts/bench_controller.py``): the LSTM outputs
    become positive at every step (zero kernels, gate and cell biases at
    ``magnitude``), the attention maps them to positive pre-activations
    (``W_prev = W_curr = magnitude * I``) and ``v = sign * magnitude``, so
    ``q = sign * magnitude * sum(tanh(...)) ~ sign * magnitude * lstm_units``
    and, with a tanh constant ``C``, ``q' = C tanh(q / T) = sign * C`` to
    float precision: the skip probability reaches the bound of the skip form.

    Args:
        controller: the controller to overwrite (its categorical heads keep
            their weights).
        sign: +1 (every skip as likely as it can be) or -1.
        magnitude: size of the weights.
    """
    if sign not in (1, -1, 1.0, -1.0):
        raise ValueError(f"sign must be +1 or -1, got {sign!r}")
    h = controller.lstm_units
    for cell in controller.cells:
        cell.kernel.assign(tf.zeros_like(cell.kernel))
        cell.recurrent_kernel.assign(tf.zeros_like(cell.recurrent_kernel))
        cell.bias.assign(tf.fill(cell.bias.shape, magnitude))
    controller.w_prev.assign(magnitude * tf.eye(h))
    controller.w_curr.assign(magnitude * tf.eye(h))
    controller.attention_v.assign(tf.fill((h, 1), float(sign) * magnitude))
