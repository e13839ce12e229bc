"""The controller: LSTM policy and searchers (REINFORCE, PPO, random search, regularized evolution)."""

from nas_tf.controller.base import Searcher
from nas_tf.controller.evolution import RegularizedEvolution, mutate_tokens
from nas_tf.controller.factory import ALGORITHMS, SearcherPool, make_searcher
from nas_tf.controller.policy import Controller, controller_for
from nas_tf.controller.ppo import PPO
from nas_tf.controller.random_search import RandomSearch
from nas_tf.controller.reinforce import PolicyGradientSearcher, Reinforce

__all__ = [
    "ALGORITHMS",
    "Controller",
    "PPO",
    "PolicyGradientSearcher",
    "RandomSearch",
    "RegularizedEvolution",
    "Reinforce",
    "Searcher",
    "SearcherPool",
    "controller_for",
    "make_searcher",
    "mutate_tokens",
]
