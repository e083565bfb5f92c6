# bench/plot.gp — throughput by scenario, grouped bars per server, for docs/benchmarks.png.
# Called by bench/run.sh:  gnuplot -e "datafile='plot.dat'; outfile='docs/benchmarks.png'" bench/plot.gp
# plot.dat: a header row of quoted server names, then one row per scenario:
#   "scenario label" bare iprotod-w1 iprotod-w2 redis   (thousands of requests/s)
if (!exists("datafile")) datafile = 'plot.dat'
if (!exists("outfile")) outfile = 'benchmarks.png'

set terminal pngcairo size 960,540 font "DejaVu Sans,11"
set output outfile
set title "Throughput on 127.0.0.1 (storage mix read=90,replace=10; Redis: GET/SET 90/10 estimate)"
set ylabel "thousands of requests/s"
set yrange [0:*]
set grid ytics
set key top left
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set offsets 0, 0, graph 0.1, 0
set xtics nomirror
set key autotitle columnheader  # the header row names the servers and is not data
servers = 4
gap = 1

plot for [i=2:servers+1] datafile using i:xtic(1), \
     for [i=2:servers+1] datafile using ($0 + (i - 2 - (servers - 1) / 2.0) / (servers + gap)):i:(sprintf("%.0f", column(i))) \
         with labels offset 0,0.7 font ",9" notitle
