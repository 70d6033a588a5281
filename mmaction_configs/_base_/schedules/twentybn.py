# The authors' Something-Something / Jester schedule: SGD with momentum 0.9 and no weight decay,
# lr 0.01 for 4 GPUs x 8 clips, x0.1 every 20 epochs (Jester: every 40). Their scripts do not
# record the number of epochs; we stop one decay period after the second decay.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=60, val_begin=1, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [dict(type='StepLR', by_epoch=True, step_size=20, gamma=0.1)]
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0),
    clip_grad=dict(max_norm=40, norm_type=2))
auto_scale_lr = dict(enable=False, base_batch_size=32)
