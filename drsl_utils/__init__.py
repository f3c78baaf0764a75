"""drsl_utils: softmax/logit distributions and adversarial robustness.

One module per idea: ``data``, ``models``, ``losses``, ``training``, ``attacks``,
``stats``, ``plots``, ``embed``, ``experiments``.
"""

__version__ = "0.2.0"
