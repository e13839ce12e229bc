"""The controller: LSTM policy and search strategies (REINFORCE, PPO, random search)."""

from nas_tf.controller.base import SearchStrategy
from nas_tf.controller.policy import Controller, controller_for
from nas_tf.controller.ppo import PPO
from nas_tf.controller.random_search import RandomSearch
from nas_tf.controller.reinforce import PolicyGradientStrategy, Reinforce

__all__ = ["Controller", "PPO", "PolicyGradientStrategy", "RandomSearch", "Reinforce", "SearchStrategy", "controller_for"]
