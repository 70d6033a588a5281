# Stage 1 of `make motion`, the stand-in for ImageNet pre-training: C2D-R18 learns which of 8
# objects cut from the footage is pasted on a single frame of it (8 classes). Its checkpoint is
# what every motion model starts from (`load_from` in _base_/motion.py).
_base_ = ['../_base_/motion.py']
load_from = None
appearance_dataset = dict(task='appearance', clip_cfg=dict(_delete_=True, size=64, patch=16))
train_dataloader = dict(batch_size=32, dataset=dict(num_videos=2400, **appearance_dataset))
val_dataloader = dict(batch_size=100, dataset=dict(num_videos=400, **appearance_dataset))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=3)
model = dict(cls_head=dict(num_classes=8))
