# lib.awk — small queries over a results CSV for the gnuplot scripts (plots/*.gp), by column
# name. Cells are split on commas: only the last column (reason) may hold quoted commas.
#   -v what=keys  -v sweep=S [-v prefix=P]   "mixer:direction ..." of rows of sweep S, in order
#   -v what=label -v sweep=S -v key=M:D      legend text: "M D (HQ=.. H=.. dh=..)" from its first
#                                            row; the swept dim is left out, L shown unless swept
#   -v what=range -v sweep=S -v col=C [-v key=M:D] [-v all=1]  "min max" of C over ok rows
#                                            (every row with all=1; "" if none)
#   -v what=device                           the device named most often
#   -v what=limit -v device=D -v col=C       column C of device D in a limits file
#   -v what=values -v sweep=S -v col=C       distinct values of C over rows of sweep S
BEGIN { FS = "," }
NR == 1 { for (i = 1; i <= NF; i++) ix[$i] = i; next }
function sz(x) { x += 0; if (x >= 1048576 && x % 1048576 == 0) return (x / 1048576) "M"; if (x >= 1024 && x % 1024 == 0) return (x / 1024) "K"; return x }
function v(name) { return (name in ix) ? $(ix[name]) : "" }
function inkey() { return key == "" || v("mixer") ":" v("direction") == key }
what == "keys" && v("sweep") == sweep && (prefix == "" || index(v("mixer"), prefix) == 1) {
    k = v("mixer") ":" v("direction")
    if (!(k in seen)) { seen[k] = 1; out = out (out == "" ? "" : " ") k }
}
what == "label" && v("sweep") == sweep && inkey() && lab == "" {
    lab = v("mixer") " " v("direction") " ("
    if (sweep != "L") lab = lab "L=" sz(v("L")) " "
    lab = lab "HQ=" v("HQ") " H=" v("H") " dh=" v("dh")
    if (v("W") + 0 && sweep != "W") lab = lab " W=" sz(v("W"))
    if (v("S") + 0) lab = lab " S=" v("S")
    if (v("K") + 0 && sweep != "K") lab = lab " K=" v("K")
    if (v("N") + 0) lab = lab " N=" v("N")
    if (v("B") + 0 != 1) lab = lab " B=" v("B")
    lab = lab ")"
}
what == "range" && v("sweep") == sweep && inkey() && (all || v("status") == "ok") && v(col) != "" {
    x = v(col) + 0
    if (x > 0) { if (n == 0 || x < lo) lo = x; if (n == 0 || x > hi) hi = x; n++ }
}
what == "device" { d = v("device"); c[d]++; if (c[d] > best) { best = c[d]; dev = d } }
what == "limit" && v("device") == device && lim == "" { lim = v(col) }
what == "values" && v("sweep") == sweep {
    x = v(col); if (!(x in seen)) { seen[x] = 1; out = out (out == "" ? "" : " ") x }
}
END {
    if (what == "keys" || what == "values") print out
    else if (what == "label") print lab
    else if (what == "range") { if (n) print lo, hi; else print "" }
    else if (what == "device") print dev
    else if (what == "limit") print lim
}
