# tflops_vs_L.gp — useful TFLOP/s (FlashAttention counting: causal halves, windowed counts only
# attended keys, HSA 4·L·HQ·K·S·dh) vs L per mixer, against the card's bf16 peak
# -> plots/tflops_vs_L_<device>.png
name = "tflops_vs_L"; metric = "tflops"; limcol = "tflops_bf16"; unit = "TFLOP/s"
what = "Compute throughput"; ylab = "useful TFLOP/s (flop / median time)"
load "plots/throughput.inc"
