# C2D-R18 on the motion task, from the appearance-stage checkpoint (see _base_/motion.py).
_base_ = ['../_base_/motion.py']
