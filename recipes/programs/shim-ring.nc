(shim-ring.nc: laser-cut a brass shim ring, outer 12 mm, inner 6.2 mm)
(centre X40 Y40 on the laser bed; work coordinates G54, mm; inner contour first so the ring stays put)
(parameters: ${power} laser S value, ${feed} mm/min)
(work zero G54 = the bed's front-left corner: stock Grbl machine space is -travel..0 after homing)
G10 L2 P1 X-120 Y-120 Z0
G21 G90 G17 G94 G54
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
