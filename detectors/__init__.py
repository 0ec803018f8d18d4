"""Detector adapters (ultralytics YOLO, torchvision Faster R-CNN) and the one COCO evaluator."""
