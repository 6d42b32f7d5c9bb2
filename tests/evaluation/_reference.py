"""Slow, literal re-statements of the community evaluation loops, for cross-checks.

Each function walks detections one at a time the way the reference tools do
(per-class global lists for HICO-DET as the official MATLAB code, per image
and class for V-COCO, per image for RLIPv2's Open Images evaluator, per
predicate for RelDN's), with scalar IoUs, so the vectorised evaluators can be
checked against an independent formulation on random data. Nothing here is
optimised on purpose.
"""

from __future__ import annotations

import numpy as np


def iou(a, b) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1.0
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1.0
    if not (iw > 0 and ih > 0):
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0] + 1.0) * (a[3] - a[1] + 1.0) + (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0) - inter
    return inter / union


def union_box(a, b):
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def ap_11(rec, prec) -> float:
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        above = [p for r, p in zip(rec, prec) if r >= t]
        ap += (max(above) if above else 0.0) / 11.0
    return ap


def ap_all(rec, prec) -> float:
    mrec = [0.0] + list(rec) + [1.0]
    mpre = [0.0] + list(prec) + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i])


def curve(flags, npos):
    tp = fp = 0
    rec, prec = [], []
    for flag in flags:
        tp += flag
        fp += 1 - flag
        rec.append(tp / npos)
        prec.append(tp / (tp + fp))
    return rec, prec


def ranked(dets):
    """``dets``: list of dicts with "score"; stable descending order."""
    return sorted(dets, key=lambda d: -d["score"])


# ---------------------------------------------------------------- HICO-DET (official MATLAB layout)


def hico(preds_by_image, gt_by_image, num_classes, top_k=100):
    """preds: image -> [dict(hoi, sub, obj, score)] (valid HOIs only); gt: image -> [dict(hoi, sub, obj)]."""
    dets = {c: [] for c in range(num_classes)}
    for image, preds in preds_by_image.items():
        for order, p in enumerate(ranked(preds)[:top_k]):
            dets[p["hoi"]].append(dict(p, image=image, order=order))
    npos = {c: 0 for c in range(num_classes)}
    for gts in gt_by_image.values():
        for g in gts:
            npos[g["hoi"]] += 1
    aps = {}
    for c in range(num_classes):
        if npos[c] == 0:
            continue
        taken = {}
        flags = []
        for d in sorted(dets[c], key=lambda d: (-d["score"], d["image"], d["order"])):
            gts = [(j, g) for j, g in enumerate(gt_by_image[d["image"]]) if g["hoi"] == c]
            ov_max, j_max = -np.inf, None
            for j, g in gts:
                ov = min(iou(d["sub"], g["sub"]), iou(d["obj"], g["obj"]))
                if ov > ov_max:
                    ov_max, j_max = ov, j
            key = (d["image"], j_max)
            if ov_max >= 0.5 and not taken.get(key):
                taken[key] = True
                flags.append(1)
            else:
                flags.append(0)
        aps[c] = ap_11(*curve(flags, npos[c])) if flags else 0.0
    return aps


# ---------------------------------------------------------------- V-COCO (vsrl_eval._do_role_eval)


def vcoco(preds_by_image, gt_images, role_classes, scenario):
    """preds: file -> [dict(cls, sub, obj or None, score)]; gt: VcocoImage list."""
    tp = {c: [] for c in range(len(role_classes))}
    sc = {c: [] for c in range(len(role_classes))}
    npos = {a: 0 for a in range(gt_images[0].actions.shape[1])}
    for image in gt_images:
        for p in range(len(image.person_boxes)):
            if not image.ignore[p]:
                for a in range(image.actions.shape[1]):
                    npos[a] += int(image.actions[p, a] == 1)
        preds = preds_by_image.get(image.file_name, [])
        for c, (a, r) in enumerate(role_classes):
            covered = set()
            for d in ranked([d for d in preds if d["cls"] == c]):
                overlaps = [iou(d["sub"], box) for box in image.person_boxes]
                jmax = int(np.argmax(overlaps))
                if image.ignore[jmax]:
                    continue
                gt_role = image.role_boxes[jmax, a, r]
                if np.isnan(gt_role).all():
                    if scenario == 1:
                        ov_role = 1.0 if d["obj"] is None or all(v == 0 for v in d["obj"]) else 0.0
                    else:
                        ov_role = 1.0
                else:
                    ov_role = 0.0 if d["obj"] is None else iou(gt_role, d["obj"])
                sc[c].append(d["score"])
                ok = image.actions[jmax, a] == 1 and overlaps[jmax] >= 0.5 and ov_role >= 0.5
                if ok and jmax not in covered:
                    covered.add(jmax)
                    tp[c].append(1)
                else:
                    tp[c].append(0)
    aps = {}
    for c, (a, _) in enumerate(role_classes):
        if npos[a] == 0:
            continue
        order = sorted(range(len(sc[c])), key=lambda i: -sc[c][i])
        aps[c] = ap_all(*curve([tp[c][i] for i in order], npos[a]))
    return aps


# ---------------------------------------------------------------- Open Images, RLIPv2 OISGGEvaluator


def oi_rlipv2(preds_by_image, gt_by_image, top_k):
    """preds/gt: file -> [dict(key=(s, o, p), sub, obj, score)]; returns (rel APs, phr APs, total TP, #GT)."""
    gt_keys = sorted({g["key"] for gts in gt_by_image.values() for g in gts})
    npos = {k: sum(g["key"] == k for gts in gt_by_image.values() for g in gts) for k in gt_keys}
    flags = {kind: {k: [] for k in gt_keys} for kind in ("rel", "phr")}
    scores = {k: [] for k in gt_keys}
    for image, gts in gt_by_image.items():
        used = {"rel": set(), "phr": set()}
        for d in ranked(preds_by_image.get(image, []))[:top_k]:
            if d["key"] not in npos:
                continue
            scores[d["key"]].append(d["score"])
            for kind in ("rel", "phr"):
                best, best_j = 0.0, None
                for j, g in enumerate(gts):
                    if g["key"] != d["key"]:
                        continue
                    if kind == "rel":
                        ov = min(iou(d["sub"], g["sub"]), iou(d["obj"], g["obj"]))
                    else:
                        ov = iou(union_box(d["sub"], d["obj"]), union_box(g["sub"], g["obj"]))
                    if ov >= 0.5 and ov > best:
                        best, best_j = ov, j
                if best_j is not None and best_j not in used[kind]:
                    used[kind].add(best_j)
                    flags[kind][d["key"]].append(1)
                else:
                    flags[kind][d["key"]].append(0)
    aps = {}
    for kind in ("rel", "phr"):
        aps[kind] = {}
        for k in gt_keys:
            order = sorted(range(len(scores[k])), key=lambda i: -scores[k][i])
            f = [flags[kind][k][i] for i in order]
            aps[kind][k] = ap_11(*curve(f, npos[k])) if f else 0.0
    total_tp = sum(sum(v) for v in flags["rel"].values())
    return aps["rel"], aps["phr"], total_tp, sum(npos.values())


# ---------------------------------------------------------------- Open Images, RelDN ap_eval_rel


def oi_reldn(preds_by_image, gt_by_image, num_predicates, top_k=100):
    """Same inputs as ``oi_rlipv2``; returns (rel APs, phr APs, recall@50)."""
    tops = {}
    recalled = total = 0
    for image, gts in gt_by_image.items():
        top = [d for d in ranked(preds_by_image.get(image, []))[:top_k] if d["score"] > 1e-5]
        tops[image] = top
        total += len(gts)
        for g in gts:
            if any(
                d["key"] == g["key"] and iou(d["sub"], g["sub"]) >= 0.5 and iou(d["obj"], g["obj"]) >= 0.5
                for d in top[:50]
            ):
                recalled += 1
    aps = {"rel": {}, "phr": {}}
    for c in range(num_predicates):
        dets = [
            dict(d, image=image, order=i)
            for image, top in tops.items()
            for i, d in enumerate(top)
            if d["key"][2] == c
        ]
        dets.sort(key=lambda d: (-d["score"], d["image"], d["order"]))
        npos = sum(g["key"][2] == c for gts in gt_by_image.values() for g in gts)
        for kind in ("rel", "phr"):
            visited = set()
            flags = []
            for d in dets:
                gts = [(j, g) for j, g in enumerate(gt_by_image[d["image"]]) if g["key"][2] == c]
                ovmax, jmax = -np.inf, None
                if gts:
                    overlaps = []
                    for j, g in gts:
                        valid = g["key"][0] == d["key"][0] and g["key"][1] == d["key"][1]
                        if kind == "rel":
                            ov = min(iou(d["sub"], g["sub"]), iou(d["obj"], g["obj"]))
                        else:
                            ov = iou(union_box(d["sub"], d["obj"]), union_box(g["sub"], g["obj"]))
                        overlaps.append((ov * valid, j))
                    ovmax = max(o for o, _ in overlaps)
                    jmax = next(j for o, j in overlaps if o == ovmax)
                if ovmax > 0.5 and (d["image"], jmax) not in visited:
                    visited.add((d["image"], jmax))
                    flags.append(1)
                else:
                    flags.append(0)
            rec = [sum(flags[: i + 1]) / (npos + 1e-12) for i in range(len(flags))]
            prec = [sum(flags[: i + 1]) / (i + 1) for i in range(len(flags))]
            aps[kind][c] = ap_all(rec, prec)
    return aps["rel"], aps["phr"], recalled / total
