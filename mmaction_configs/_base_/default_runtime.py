# Shared runtime: mmaction2's defaults, plus cp_plugin's mmaction2 glue imported first (it
# registers our modules and repairs the mmaction2 1.2.0 install, see cp_plugin.mmaction.compat).
custom_imports = dict(imports=['cp_plugin.mmaction'], allow_failed_imports=False)
default_scope = 'mmaction'
# mmengine's Runner whose checkpoint loads (resume, load_from, test) accept mmengine's own
# logging classes under torch's weights_only check, for those loads only.
runner_type = 'mmaction.WeightsOnlyRunner'

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, ignore_last=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, save_best='auto', max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    sync_buffers=dict(type='SyncBuffersHook'))
# cp_plugin's: random states in checkpoints (exact resume), and a check at the end of every
# epoch that all ranks hold the same weights.
custom_hooks = [dict(type='RandomStateHook'), dict(type='RankAgreementHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

log_processor = dict(type='LogProcessor', window_size=20, by_epoch=True)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='ActionVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
