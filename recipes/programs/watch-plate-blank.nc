(watch-plate-blank.nc: laser-cut the 20 x 16 mm watch plate blank from 0.5 mm brass, 1 mm corner radii)
(part lower-left corner at X10 Y10 on the laser bed; work coordinates G54, mm)
(parameters: ${power} laser S value, ${feed} mm/min - set by the recipe step)
(work zero G54 = the bed's front-left corner: stock Grbl machine space is -travel..0 after homing)
G10 L2 P1 X-120 Y-120 Z0
G21 G90 G17 G94 G54
M5
G0 X0 Y0
(M4: dynamic laser power, scaled with speed, so corners do not burn)
F${feed}
G0 X11 Y10
(pass 1 of 2)
M4 S${power}
G1 X29 Y10
G3 X30 Y11 I0 J1
G1 X30 Y25
G3 X29 Y26 I-1 J0
G1 X11 Y26
G3 X10 Y25 I0 J-1
G1 X10 Y11
G3 X11 Y10 I1 J0
M5
(pass 2 of 2)
M4 S${power}
G1 X29 Y10
G3 X30 Y11 I0 J1
G1 X30 Y25
G3 X29 Y26 I-1 J0
G1 X11 Y26
G3 X10 Y25 I0 J-1
G1 X10 Y11
G3 X11 Y10 I1 J0
M5
M5
G0 X0 Y0
M2
