# memory_vs_L.gp — peak memory of a kernel point vs L per mixer (measured: device memory in use
# on CUDA, peak-RSS rise on the CPU; solid), the family's prediction (dotted, same colour), and
# the card's memory from results/device_limits.csv. Points that did not run are marked at their
# predicted size: x = out of memory, + = time budget or unsupported -> plots/memory_vs_L_<device>.png
load "plots/common.inc"
gib(x) = x / 1073741824.0
do for [f in FILES] {
    ks = keys(f, "L")
    ms = mixers(f, "L", "")
    r = range(f, "L", "predicted_bytes")
    if (ks eq "" || r eq "") { print sprintf("memory_vs_L: %s has no L-sweep rows; skipped", f); continue }
    dev = card(f)
    lim = limit(dev, "mem_bytes")
    unset arrow
    unset label
    rall = rangeall(f, "L", "predicted_bytes")
    lo = gib(real(word(rall, 1))); hi = gib(real(word(rall, 2)))
    rpk = range(f, "L", "peak_mem_bytes")
    if (rpk ne "") { lo = (gib(real(word(rpk, 1))) < lo) ? gib(real(word(rpk, 1))) : lo }
    if (lim ne "") {
        hi = (gib(real(lim)) > hi) ? gib(real(lim)) : hi
        set arrow 1 from graph 0, first gib(real(lim)) to graph 1, first gib(real(lim)) nohead lw 2 dt 2 lc rgb "#444444"
        set label 1 sprintf("device memory %.1f GiB", gib(real(lim))) at graph 0.01, first gib(real(lim)) * 1.45 left textcolor rgb "#444444"
    }
    rx = rangeall(f, "L", "L")
    set xrange [real(word(rx, 1)) / 1.3 : real(word(rx, 2)) * 1.3]
    out = sprintf("%s/memory_vs_L_%s.png", outdir, slug(f))
    eval(TERM(words(ks) + 3))
    set output out
    set bmargin keyrows(words(ks) + 3)
    set title sprintf("Peak memory vs context length — %s", cardtitle(f))
    set xlabel "context length L (tokens)"
    set ylabel "memory (GiB)"
    set logscale xy
    eval("set xtics " . ltics(real(word(rx, 1)), real(word(rx, 2))))
    set format y "%g"
    set yrange [lo / 3 : hi * 4]
    plot for [i=1:words(ks)] f using (isok("L", word(ks, i)) ? column("L") : NaN):(gib(column("peak_mem_bytes"))) \
             with linespoints lt mixlt(ms, word(ks, i)) dt dirdt(word(ks, i)) pt dirpt(word(ks, i)) ps 1.1 title label(f, "L", word(ks, i)), \
         for [i=1:words(ks)] f using (is("L", word(ks, i)) ? column("L") : NaN):(gib(column("predicted_bytes"))) \
             with lines lt mixlt(ms, word(ks, i)) dt 3 lw 1 notitle, \
         for [i=1:words(ks)] f using (isoom("L", word(ks, i)) ? column("L") : NaN):(gib(column("predicted_bytes"))) \
             with points lt mixlt(ms, word(ks, i)) pt 2 ps 2 lw 2 notitle, \
         for [i=1:words(ks)] f using (isskip("L", word(ks, i)) ? column("L") : NaN):(gib(column("predicted_bytes"))) \
             with points lt mixlt(ms, word(ks, i)) pt 1 ps 2 lw 2 notitle, \
         NaN with lines lc black dt 3 lw 1 title "predicted (dotted)", \
         NaN with points lc black pt 2 ps 2 lw 2 title "out of memory (at predicted size)", \
         NaN with points lc black pt 1 ps 2 lw 2 title "over budget / unsupported (at predicted size)"
    eval(PDFCOPY(words(ks) + 3, out))
    unset output
    print "wrote " . out . " (and .pdf)"
}
unset arrow
unset label
