"""Downstream evaluation: HICO-DET, V-COCO, Open Images v6 SGG and Visual Genome SGG.

Each evaluator takes predictions keyed by image file name (``Triplet`` lists
or columnar ``ImagePredictions``) and ground truth from ``storage.downstream``
and returns an ``EvalResult``; ``write_result`` stores it as JSON next to the
checkpoint and ``format_table`` renders it. The module docstrings of
``hico_det``, ``vcoco`` and ``oi_sgg`` state which community code each
protocol reproduces.
"""

from stages.evaluation.hico_det import evaluate_hico_det
from stages.evaluation.oi_sgg import evaluate_oi_sgg
from stages.evaluation.predictions import ImagePredictions, Triplet
from stages.evaluation.report import EvalResult, format_table, read_result, result_path, write_result
from stages.evaluation.vcoco import evaluate_vcoco
from stages.evaluation.vg_sgg import SceneGraphPrediction, evaluate_vg_sgg

__all__ = [
    "EvalResult",
    "ImagePredictions",
    "SceneGraphPrediction",
    "Triplet",
    "evaluate_hico_det",
    "evaluate_oi_sgg",
    "evaluate_vcoco",
    "evaluate_vg_sgg",
    "format_table",
    "read_result",
    "result_path",
    "write_result",
]
