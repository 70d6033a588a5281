# TRN baseline (paper Table 5(b) quotes MultiScale TRN) on Jester raw frames, with mmaction2's
# TRNHead and TRN recipe as in ../sthv2/trn_r50_1x1x8_sthv2.py; no flips (they change
# left/right gestures).
_base_ = ['../sthv2/trn_r50_1x1x8_sthv2.py']
model = dict(cls_head=dict(num_classes=27))
dataset_type = 'RawframeDataset'
data_root = 'data/jester/rawframes'
ann_file_train = 'data/jester/jester_train_list_rawframes.txt'
ann_file_val = 'data/jester/jester_val_list_rawframes.txt'
read_raw_frames = dict(type='NameReadFailures', transform=dict(type='RawFrameDecode'))
train_pipeline = (_base_.train_pipeline[1:2] + [read_raw_frames]
                  + _base_.train_pipeline[3:6] + _base_.train_pipeline[7:])
val_pipeline = _base_.val_pipeline[1:2] + [read_raw_frames] + _base_.val_pipeline[3:]
test_pipeline = _base_.test_pipeline[1:2] + [read_raw_frames] + _base_.test_pipeline[3:]
train_dataloader = dict(dataset=dict(
    type=dataset_type, ann_file=ann_file_train, data_prefix=dict(img=data_root),
    filename_tmpl='{:05}.jpg', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    type=dataset_type, ann_file=ann_file_val, data_prefix=dict(img=data_root),
    filename_tmpl='{:05}.jpg', pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(
    type=dataset_type, ann_file=ann_file_val, data_prefix=dict(img=data_root),
    filename_tmpl='{:05}.jpg', pipeline=test_pipeline))
