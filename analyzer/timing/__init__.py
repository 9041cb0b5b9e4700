"""Time prediction: device profiles, and the commands' machinery that makes and checks them.

- :mod:`.profile` — a device profile (coefficients per layer kind, with provenance and fit
  error, stored as JSON in ``analyzer/devices/``) and :func:`.profile.predict_report`, which
  fills ``time_ms`` (milliseconds) on a report.
- :mod:`.fusions`, :mod:`.nnls` — which layers a runtime fuses; the least-squares solver.
- :mod:`.fit` — fit a profile from ``caffe time`` logs (:mod:`.caffe_log` reads them).
- :mod:`.lower` — lower the IR to an ONNX model onnxruntime can run.
- :mod:`.runtime` — onnxruntime sessions: feeds, timing runs, peak RSS.
- :mod:`.grid` — the small nets calibration and the probe are built from.
- :mod:`.calibrate` — measure this machine on a grid of layers and fit a profile.
- :mod:`.probe` — the machine-state probe (a fast or a slow state of this VM).
- :mod:`.measure` — run a model for real and compare with the prediction.
- :mod:`.runtime_memory` — the resident memory onnxruntime adds: measured, fitted, predicted.

May import: :mod:`analyzer.analysis`, :mod:`analyzer.render`, the layers, frontends, IR and
errors. Never :mod:`analyzer.commands`.
"""
