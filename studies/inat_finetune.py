"""iNaturalist 10-class, Part B: fine-tuning an ImageNet-pretrained ResNet-50 (SEEDS.md 4).

Three strategies: freeze everything but the classifier, freeze up to `layer3`, or fine-tune
everything; compared with the CNN from scratch (studies/inat_scratch.py) on accuracy, training
time and generalisation (the report's cost plot and train/val gap).

Pretrained weights are read offline (local Hugging Face cache or weights_path).
"""

from ablate import Study

study = Study(
    name="inat_finetune",
    description="ResNet-50 from ImageNet on iNaturalist-10: freeze head_only / up to layer3 / none.",
    base=dict(
        dataset="imagefolder:data/inaturalist_12K",
        num_classes=10,
        image_size=224,
        model="resnet50",
        pretrained=True,
        normalize="imagenet",
        epochs=10,
        batch_size=64,
        optimizer="sgd",
        lr=0.01,
        momentum=0.9,
        weight_decay=1e-4,
        scheduler="cosine",
        augment="basic",
        crop_padding=16,
        val_split=0.2,
        early_stopping=3,
        amp="auto",
        num_workers=4,
    ),
    factors=dict(freeze=["head_only", "layer3", "none"]),
    seeds=[0, 1],
    design="grid",
    metric="val_acc",
)
