# The toy CPNet trained with automatic mixed precision: mmengine's AmpOptimWrapper (float16 with
# loss scaling by default on a GPU), or its bfloat16 form on the CPU. Same recipe otherwise.
_base_ = ['cpnet_toy.py']
optim_wrapper = dict(type='MixedPrecisionOptimWrapper')
# mmaction2's heads score their training accuracy in numpy, which has no bfloat16.
custom_hooks = _base_.custom_hooks + [dict(type='Float32ScoresHook')]
