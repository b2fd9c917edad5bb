# gbps_vs_L.gp — GB/s (minimal bytes: inputs read once, outputs written once, / median time) vs L
# per mixer, against the card's memory bandwidth -> plots/gbps_vs_L_<device>.png
name = "gbps_vs_L"; metric = "gbps"; limcol = "gbps_hbm"; unit = "GB/s"
what = "Memory throughput"; ylab = "GB/s (minimal bytes / median time)"
load "plots/throughput.inc"
