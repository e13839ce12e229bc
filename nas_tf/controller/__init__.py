"""The controller: LSTM policy and search strategies (REINFORCE, random search)."""

from nas_tf.controller.base import SearchStrategy
from nas_tf.controller.policy import Controller, controller_for
from nas_tf.controller.random_search import RandomSearch
from nas_tf.controller.reinforce import PolicyGradientStrategy, Reinforce

__all__ = ["Controller", "PolicyGradientStrategy", "RandomSearch", "Reinforce", "SearchStrategy", "controller_for"]
