"""The controller: LSTM policy and search strategies (REINFORCE, PPO, random search)."""

from nas_tf.controller.base import Searcher
from nas_tf.controller.policy import Controller, controller_for
from nas_tf.controller.ppo import PPO
from nas_tf.controller.random_search import RandomSearch
from nas_tf.controller.reinforce import PolicyGradientSearcher, Reinforce

__all__ = ["Controller", "PPO", "PolicyGradientSearcher", "RandomSearch", "Reinforce", "Searcher", "controller_for"]
