"""The LSTM controller (policy network) shared by every search space.

One :class:`Controller` reads any space's
:class:`~nas_tf.spaces.decisions.DecisionList`: it takes one LSTM step per
decision, feeding the embedding of the previous action as the next input
(Zoph & Le 2017, section 3.1). Categorical decisions are sampled by one softmax
head per decision type; skip decisions use the set-selection attention of the
paper (section 3.3),

    P(j -> i) = sigmoid(v^T tanh(W_prev h_j + W_curr h_i)),

sampled independently for every earlier anchor ``j``; select decisions use a
softmax over the same scores (ENAS). Logits can be divided by a temperature and
squashed with ``C * tanh`` (ENAS).

Sampling and scoring run the same unrolled computation inside one
``tf.function`` per decision list (static shapes, traced once per list), so the
log-probability of a sampled architecture equals the log-probability that
:meth:`Controller.log_prob` computes for its tokens.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import keras
import tensorflow as tf

from nas_tf.spaces.decisions import Anchor, Categorical, DecisionList, Select, Skip


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
        self.types = {str(t): int(k) for t, k in sorted(types.items())}
        self.lstm_units = int(lstm_units)
        self.lstm_layers = int(lstm_layers)
        self.init_range = float(init_range)
        self.temperature = temperature
        self.tanh_constant = tanh_constant
        self.seed = seed
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
            self.heads[t] = (
                self.add_weight(shape=(h, k), initializer=self._init(), name=f"{safe}_softmax_kernel"),
                self.add_weight(shape=(k,), initializer=self._init(), name=f"{safe}_softmax_bias"),
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
        )
        return config

    # ------------------------------------------------------------------ core

    def _shape_logits(self, logits):
        if self.temperature is not None:
            logits = logits / self.temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * tf.tanh(logits)
        return logits

    def _check(self, decisions: DecisionList) -> None:
        for t, choices in decisions.types.items():
            if t not in self.types:
                raise ValueError(f"decision type {t!r} has no softmax head in this controller (heads: {list(self.types)})")
            if len(choices) != self.types[t]:
                raise ValueError(
                    f"decision type {t!r} has {len(choices)} choices but the controller head has {self.types[t]}"
                )

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
                logits = self._shape_logits(tf.matmul(out_h, kernel) + bias)
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
                        if tokens is None:
                            u = tf.random.stateless_uniform((batch, n), seed=step_seed)
                            bits = tf.cast(u < tf.sigmoid(scores), tf.int32)
                        else:
                            bits = tokens[:, offset : offset + n]
                        fbits = tf.cast(bits, scores.dtype)
                        log_p1, log_p0 = tf.math.log_sigmoid(scores), tf.math.log_sigmoid(-scores)
                        p1 = tf.exp(log_p1)
                        skip_kls.append(
                            tf.reduce_sum(
                                p1 * (log_p1 - math.log(skip_target))
                                + (1.0 - p1) * (log_p0 - math.log(1.0 - skip_target)),
                                axis=-1,
                            )
                        )
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
                    if tokens is None:
                        action = tf.cast(tf.random.stateless_categorical(scores, 1, seed=step_seed)[:, 0], tf.int32)
                    else:
                        action = tokens[:, offset]
                    log_sm = tf.nn.log_softmax(scores)
                    log_prob += tf.gather(log_sm, action, batch_dims=1)
                    entropy += -tf.reduce_sum(tf.exp(log_sm) * log_sm, axis=-1)
                    x = tf.gather(values, action, batch_dims=1)
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
