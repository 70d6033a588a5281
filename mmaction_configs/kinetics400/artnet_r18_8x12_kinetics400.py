# ARTNet-ResNet18 (paper Table 3(d)), from scratch on 112x112 crops as ARTNet.
# 8-frame clips at 1/12 of the original frame rate; test 25 clips x 10 crops.
_base_ = [
    '../_base_/models/artnet_r18.py', '../_base_/datasets/kinetics400.py',
    '../_base_/schedules/sgd_100e.py', '../_base_/default_runtime.py'
]
# ARTNet's modules are registered by their own module.
custom_imports = dict(imports=['cp_plugin.mmaction', 'cp_plugin.baselines.mmaction'],
                      allow_failed_imports=False)

# ARTNet's input size: shorter side 128, 112x112 crops.
train_pipeline = _base_.train_pipeline
val_pipeline = _base_.val_pipeline
test_pipeline = _base_.test_pipeline
train_pipeline[3]['scale'] = (-1, 128)
train_pipeline[5]['scale'] = (112, 112)
val_pipeline[3]['scale'] = (-1, 128)
val_pipeline[4]['crop_size'] = 112
test_pipeline[3]['scale'] = (-1, 128)
test_pipeline[4]['crop_size'] = 112
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
