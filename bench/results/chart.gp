set terminal svg size 1100,900 dynamic font "sans,11"
set output "chart.svg"
set multiplot layout 2,1
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set key outside right top vertical
set xtics rotate by -20 noenhance
set datafile missing "nan"
set title "S1: 64 B ping-pong, half round trip (µs, lower is better)"
set ylabel "µs"
plot "chart-s1.dat" using 2:xtic(1) title "unpinned", "" using 3 title "pinned to one CPU", \
     "" using 4 title "ping and pong on two CPUs"
set title "S2: 3840x2160 RGBA frames per second (log scale, higher is better)"
set ylabel "frames/s"
set logscale y
plot "chart-s2.dat" using 2:xtic(1) title "touch one byte per page", "" using 3 title "read every byte"
unset multiplot
