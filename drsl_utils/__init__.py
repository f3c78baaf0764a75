"""drsl_utils: softmax/logit distributions and adversarial robustness.

One module per idea: ``data``, ``models``, ``losses``, ``training``, ``attacks``,
``evaluation``, ``stats``, ``plots``, ``embed``, ``experiments``; ``errors`` names the
kinds of bad input (each a ``ValueError``). Your own model goes in as it is:
``evaluation.evaluate(model, ["pgd"], images, labels, eps_grid=[0.1])``, or with a
feature source for UMAP, ``evaluation.foreign(model, features="layer name")`` in its
place.
"""

__version__ = "0.2.0"
