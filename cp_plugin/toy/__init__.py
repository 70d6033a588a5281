"""The paper's toy task (Table 1): squares moving over a grey background.

- :mod:`.moving_square`: the video generator (numpy only).
- :mod:`.mmaction`: its mmaction2 dataset and the layers of the toy networks (registered when
  imported, as the toy configs do).
"""
from .moving_square import DIRECTIONS, MovingSquares, generate_moving_squares

__all__ = ["DIRECTIONS", "MovingSquares", "generate_moving_squares"]
