#!/bin/sh
# Rebuild the shipped device profiles from the public CK `caffe time` tables in ../shared.
# Fit on AlexNet and SqueezeNet 1.0/1.1 (forward, median over 3 repetitions, batch 2..16);
# GoogLeNet is held out and its errors are stored in each profile. --memory is the device's
# memory, the budget of 'cnnstat plan'. Run from the repo root.
set -eu
T=../shared/validation/public_timings
python -m analyzer fit --ck-tsv $T/ck_caffe_gtx1080_per_layer.tsv \
  --summary $T/ck_caffe_gtx1080_summary.tsv --experiment-suffix cudnn \
  --corpus ../shared/corpus/caffe --holdout googlenet --name gtx1080 \
  --hardware "NVIDIA GeForce GTX 1080 Founders Edition (driver 367.57, CUDA 8.0.44)" \
  --software "BVLC Caffe 4ba654f + cuDNN 5.1, caffe time (TRAIN phase), fp32" \
  --source "github.com/dividiti/ck-caffe-nvidia-gtx1080 @ 217ab573, experiments *-cudnn" \
  --memory 8GiB --memory-note "8 GiB GDDR5X on the card; the CUDA context and the framework take part of it" \
  -o analyzer/devices/gtx1080.json
python -m analyzer fit --ck-tsv $T/ck_caffe_jetson_tx1_per_layer.tsv \
  --summary $T/ck_caffe_jetson_tx1_summary.tsv --experiment-suffix nvidia-cudnn \
  --corpus ../shared/corpus/caffe --holdout googlenet --name jetson-tx1 \
  --hardware "NVIDIA Jetson TX1 (Maxwell, 256 CUDA cores; L4T 24.2.1, CUDA 8.0.33)" \
  --software "NVIDIA Caffe 0.15 1024d34 + cuDNN 5.1, caffe time (TRAIN phase), fp32" \
  --source "github.com/dividiti/ck-caffe-nvidia-tx1 @ 6c10e9fd, experiments *-nvidia-cudnn" \
  --memory 4GiB --memory-note "4 GiB LPDDR4 shared by the CPU, the GPU and the system: the net gets less" \
  -o analyzer/devices/jetson-tx1.json
