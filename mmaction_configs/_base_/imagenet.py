# ImageNet initialisation: torchvision ResNet state dicts as local files (no download).
# This is the one place to change; see docs/data_preparation.md for where to get them.
imagenet_checkpoints = dict(
    resnet18='data/pretrained/resnet18-f37072fd.pth',
    resnet34='data/pretrained/resnet34-b627a593.pth',
    resnet50='data/pretrained/resnet50-0676ba61.pth',
    resnet101='data/pretrained/resnet101-63fe2227.pth')
