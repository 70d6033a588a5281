"""timm side of cp_plugin: CP modules in timm ResNet-family models.

Not implemented yet: the insertion function, the video wrapper and the ``cpnet_*`` model names
arrive with their own issue. Today this package only checks that its requirements are installed.
"""
try:
    import timm  # noqa: F401
    import torchvision  # noqa: F401  (timm imports it; a mismatched build fails here first)
except ImportError as error:
    raise ImportError(
        f"timm_adapters needs timm and a torchvision that matches torch ({error}); install them "
        f"with: pip install \"cp-plugin[timm]\"") from error

__all__: list = []
