# memory_vs_L.gp — peak memory of a kernel point vs L per mixer (measured: device memory in use
# on CUDA, peak-RSS rise on the CPU; solid), the family's prediction (dashed, same colour), and
# the card's memory from results/device_limits.csv. Points that ran out of memory are marked x
# at their predicted size -> plots/memory_vs_L_<device>.png
load "plots/common.inc"
gib(x) = x / 1073741824.0
do for [f in FILES] {
    ks = keys(f, "L")
    r = range(f, "L", "predicted_bytes")
    if (ks eq "" || r eq "") { print sprintf("memory_vs_L: %s has no L-sweep rows; skipped", f); continue }
    dev = card(f)
    lim = limit(dev, "mem_bytes")
    unset arrow
    unset label
    rall = rangeall(f, "L", "predicted_bytes")
    lo = gib(real(word(rall, 1))); hi = gib(real(word(rall, 2)))
    if (lim ne "") {
        hi = (gib(real(lim)) > hi) ? gib(real(lim)) : hi
        set arrow 1 from graph 0, first gib(real(lim)) to graph 1, first gib(real(lim)) nohead lw 2 dt 2 lc rgb "#444444"
        set label 1 sprintf("%s memory %.1f GiB", dev, gib(real(lim))) at graph 0.01, first gib(real(lim)) * 1.3 left textcolor rgb "#444444"
    }
    rx = rangeall(f, "L", "L")
    set xrange [real(word(rx, 1)) / 1.3 : real(word(rx, 2)) * 1.3]
    out = sprintf("%s/memory_vs_L_%s.png", outdir, slug(f))
    set output out
    set bmargin keyrows(words(ks) + 2)
    set title sprintf("Peak memory vs context length — %s", dev)
    set xlabel "context length L (tokens)"
    set ylabel "memory (GiB)"
    set logscale xy
    eval("set xtics " . L_TICS)
    set format y "%g"
    set yrange [lo / 3 : hi * 4]
    plot for [i=1:words(ks)] f using (isok("L", word(ks, i)) ? column("L") : NaN):(gib(column("peak_mem_bytes"))) \
             with linespoints lt i ps 1.1 title label(f, "L", word(ks, i)), \
         for [i=1:words(ks)] f using (is("L", word(ks, i)) ? column("L") : NaN):(gib(column("predicted_bytes"))) \
             with lines lt i dt 2 notitle, \
         for [i=1:words(ks)] f using (isoom("L", word(ks, i)) ? column("L") : NaN):(gib(column("predicted_bytes"))) \
             with points lt i pt 2 ps 2 lw 2 notitle, \
         NaN with lines lc black dt 2 title "predicted (dashed)", \
         NaN with points lc black pt 2 ps 2 lw 2 title "out of memory (at its predicted size)"
    unset output
    print "wrote " . out
}
unset arrow
unset label
