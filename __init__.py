"""MIDG: mask inpainting-based defect generation for surface inspection datasets.

Installed, the top-level folders of this repository become one package, `midg`:
`midg.datasets` (the canonical dataset layer), `midg.augment` (the generator and its
baselines), `midg.detectors` (detector adapters and the one COCO evaluator) and
`midg.pipelines` (the `midg` CLI and the DVC stages).
"""

__version__ = "0.1.0"
