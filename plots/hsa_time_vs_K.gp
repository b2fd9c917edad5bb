# hsa_time_vs_K.gp — HSA kernel time vs top-k K (the `K` sweep: fixed L and chunk size S), one
# line per HSA mixer and direction; points not run marked -> plots/hsa_time_vs_K_<device>.png
load "plots/common.inc"
name = "hsa_time_vs_K"; sw = "K"; xcol = "K"; prefix = "hsa"
xlab = "top-k K (chunks attended per token)"; what = "HSA time vs top-k"
load "plots/vs_param.inc"
