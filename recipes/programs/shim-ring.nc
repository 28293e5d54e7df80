(shim-ring.nc: laser-cut a brass shim ring, outer 12 mm, inner 6.2 mm)
(centre X40 Y40 on the laser bed; machine coordinates, mm; inner contour first so the ring stays put)
(parameters: ${power} laser S value, ${feed} mm/min)
G21 G90 G17 G94
M5
F${feed}
(inner contour, diameter 6.2 mm, lead-in from inside the scrap)
G0 X37.4 Y40
M4 S${power}
G1 X36.9 Y40
G2 X36.9 Y40 I3.1 J0
M5
(outer contour, diameter 12 mm, lead-in from inside the scrap)
G0 X33.5 Y40
M4 S${power}
G1 X34 Y40
G2 X34 Y40 I6 J0
M5
G0 X0 Y0
M2
