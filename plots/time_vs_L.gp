# time_vs_L.gp — kernel time (median ms) vs context length L, log-log, one line per mixer and
# direction, from the `L` sweep of every results/kernels_*.csv -> plots/time_vs_L_<device>.png.
# Points that did not run are marked on the bottom edge at their L: x = out of memory,
# + = skipped (time budget, unsupported shape) or error.
load "plots/common.inc"
do for [f in FILES] {
    ks = keys(f, "L")
    ms = mixers(f, "L", "")
    r = range(f, "L", "ms")
    if (ks eq "" || r eq "") { print sprintf("time_vs_L: %s has no measured L-sweep rows; skipped", f); continue }
    lo = real(word(r, 1)); hi = real(word(r, 2))
    ybot = lo / 6
    rx = rangeall(f, "L", "L")
    set xrange [real(word(rx, 1)) / 1.3 : real(word(rx, 2)) * 1.3]
    out = sprintf("%s/time_vs_L_%s.png", outdir, slug(f))
    eval(TERM(words(ks) + 2))
    set output out
    set bmargin keyrows(words(ks) + 2)
    set title sprintf("Kernel time vs context length — %s", cardtitle(f))
    set xlabel "context length L (tokens)"
    set ylabel "time per call (ms, median)"
    set logscale xy
    eval("set xtics " . ltics(real(word(rx, 1)), real(word(rx, 2))))
    set format y "%g"
    set yrange [ybot / 1.5 : hi * 3]
    plot for [i=1:words(ks)] f using (isok("L", word(ks, i)) ? column("L") : NaN):(column("ms")) \
             with linespoints lt mixlt(ms, word(ks, i)) dt dirdt(word(ks, i)) pt dirpt(word(ks, i)) ps 1.1 title label(f, "L", word(ks, i)), \
         for [i=1:words(ks)] f using (isoom("L", word(ks, i)) ? column("L") : NaN):(markrow(ybot, i)) \
             with points lt mixlt(ms, word(ks, i)) pt 2 ps 2 lw 2 notitle, \
         for [i=1:words(ks)] f using (isskip("L", word(ks, i)) ? column("L") : NaN):(markrow(ybot, i)) \
             with points lt mixlt(ms, word(ks, i)) pt 1 ps 2 lw 2 notitle, \
         NaN with points lc black pt 2 ps 2 lw 2 title "not run: out of memory", \
         NaN with points lc black pt 1 ps 2 lw 2 title "not run: over time budget / unsupported"
    eval(PDFCOPY(words(ks) + 2, out))
    unset output
    print "wrote " . out . " (and .pdf)"
}
