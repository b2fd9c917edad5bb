# swa_time_vs_W.gp — SWA kernel time vs window W (the `W` sweep: fixed L), log-log, one line
# per direction; points not run marked on the bottom edge -> plots/swa_time_vs_W_<device>.png
load "plots/common.inc"
name = "swa_time_vs_W"; sw = "W"; xcol = "W"; prefix = "swa"
xlab = "window W (keys)"; what = "SWA time vs window size"
load "plots/vs_param.inc"
