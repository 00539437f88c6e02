"""Export a training run as a torch-only TorchScript model (+ labels, metrics, model card), optionally to the Hub.

    python export.py runs/effnet --out exports/effnet --check-data ../shared/data/world_landmarks --check-split test
    python export.py runs/effnet --out exports/effnet --format onnx   # + model.onnx, served by ONNX Runtime
    python export.py runs/effnet --out exports/effnet --format onnx-int8   # + model.int8.onnx (static int8), served first
    python export.py runs/effnet --out exports/effnet --push-to-hub me/landmark-tagger --revision v1 --private
"""
from __future__ import annotations

import argparse
import sys

from landmark_lib.data.folder import DatasetError
from landmark_lib.export import TOLERANCE, ExportError, export_run
from landmark_lib.run import RunError
from landmark_lib.serving import threshold_arg


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export a run folder to TorchScript (model.pt + labels.json).")
    parser.add_argument("run_dir", help="run folder (config.json + model.safetensors)")
    parser.add_argument("--out", required=True, help="folder for model.pt, labels.json, export.json, metrics.json")
    parser.add_argument("--check-data", nargs="+", help="dataset root(s) for the self-check photos and the evaluation (default: the run's data)")
    parser.add_argument("--check-split", default="test")
    parser.add_argument("--no-eval", action="store_true", help="skip evaluating the exported file on the check split")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--format", choices=("torchscript", "onnx", "onnx-int8"), default="torchscript",
                        help="onnx: also write model.onnx (the network, for ONNX Runtime; the app prefers it on CPU); "
                             "onnx-int8: model.onnx and model.int8.onnx (static int8, calibrated on training photos, kept only "
                             "within 1 point of fp32 validation top-1; the app prefers it). model.pt is always written")
    parser.add_argument("--calibration-photos", type=int, default=128, help="training photos that calibrate int8 activation ranges")
    parser.add_argument("--threshold", type=threshold_arg, help="confidence below which the app says no landmark was recognised "
                        "(default: chosen on the run's validation split, see --target-precision)")
    parser.add_argument("--target-precision", type=float, default=0.95, help="precision the named landmarks must reach on validation (default 0.95)")
    parser.add_argument("--max-false-accept", type=float, default=0.02,
                        help="share of the validation no-landmark photos that may be named as a landmark (default 0.02)")
    parser.add_argument("--push-to-hub", metavar="OWNER/NAME", help="upload the export (with a model card) to this Hub repo")
    parser.add_argument("--revision", help="Hub branch to push to (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")
    args = parser.parse_args(argv)
    try:
        info = export_run(args.run_dir, args.out, args.check_data, args.check_split, not args.no_eval, args.batch_size, args.threshold,
                          args.target_precision, args.max_false_accept, onnx=args.format != "torchscript", int8=args.format == "onnx-int8",
                          calibration_photos=args.calibration_photos)
    except (RunError, DatasetError, ExportError) as error:
        sys.exit(f"error: {error}")
    print(f"wrote {args.out}/model.pt; torch-only reload matches eager: max |diff| {info['max_abs_diff']:.2e} <= {TOLERANCE:g}")
    if info["onnx"]:
        print(f"wrote {args.out}/model.onnx; ONNX Runtime matches eager: max |diff| {info['onnx']['max_abs_diff']:.2e} <= {TOLERANCE:g}")
    int8 = info.get("onnx_int8")
    if int8:
        print(f"wrote {args.out}/{int8['file']}; validation top-1 int8 {int8['valid_top1_int8']:.2%} vs fp32 {int8['valid_top1_fp32']:.2%} "
              f"({int8['calibration_photos']} calibration photos), threshold {int8['threshold']:.3f}"
              + (f"; {int8['metrics']['split']} top-1 {int8['metrics']['top1']:.2%}" if int8.get("metrics") else ""))
    if info["threshold"] is not None:
        print(f"recognition threshold {info['threshold']:.3f} ({info['threshold_calibration']})")
    metrics = info["metrics"]
    if metrics:
        print(f"exported model on {metrics['split']}: top-1 {metrics['top1']:.2%}  top-5 {metrics['top5']:.2%}  "
              f"macro-F1 {metrics['macro_f1']:.4f} ({metrics['n_images']} images, {metrics['n_skipped']} skipped)")
        if metrics.get("gap") is not None:
            pct = {k: "n/a" if metrics[k] is None else f"{metrics[k]:.2%}" for k in ("landmark_top1", "coverage", "precision", "false_accept_rate")}
            print(f"  GAP {metrics['gap']:.4f}; landmark photos: top-1 {pct['landmark_top1']}, coverage {pct['coverage']}, "
                  f"precision {pct['precision']}; no-landmark photos named: {pct['false_accept_rate']}")
    elif not args.no_eval:
        print("not evaluated: no dataset found (pass --check-data ROOT)")
    from landmark_lib.hub import HubError, build_model_card, push_to_hub

    # The card travels with the export (committed defaults, Hub uploads); OWNER/NAME is a placeholder until pushed.
    build_model_card(args.out, args.push_to_hub or "OWNER/landmark-tagger").save(f"{args.out}/README.md")
    if info.get("onnx_int8_refused"):
        sys.exit(f"error: {info['onnx_int8_refused']}")
    if args.push_to_hub:
        try:
            url = push_to_hub(args.out, args.push_to_hub, revision=args.revision, private=args.private)
        except HubError as error:
            sys.exit(f"error: {error}")
        print(f"pushed to {url}")


if __name__ == "__main__":
    main()
