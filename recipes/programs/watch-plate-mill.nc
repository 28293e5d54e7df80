(watch-plate-mill.nc: pockets P1, P2 and holes H1..H5 of the watch plate)
(fixture puts the plate's lower-left corner at X30 Y20, top face at Z-20; work coordinates G54, mm)
(tool: 0.8 mm two-flute flat end mill; parameters: ${spindle} rpm, ${feed} mm/min, ${plunge} mm/min)
(work zero G54 = the bed's front-left corner: stock Grbl machine space is -travel..0 after homing)
G10 L2 P1 X-80 Y-60 Z0
G21 G90 G17 G94 G54
G0 Z-12
S${spindle} M3
G4 P2
(pocket R1: 5 x 3 mm, 0.2 mm deep, two levels, stepover 0.3 mm)
G0 X37.9 Y31.4
G0 Z-19.5
G1 Z-20.1 F${plunge}
F${feed}
G1 X42.1 Y31.4
G1 Y31.7
G1 X37.9 Y31.7
G1 Y32
G1 X42.1 Y32
G1 Y32.3
G1 X37.9 Y32.3
G1 Y32.6
G1 X42.1 Y32.6
G1 Y32.9
G1 X37.9 Y32.9
G1 Y33.2
G1 X42.1 Y33.2
G1 Y33.5
G1 X37.9 Y33.5
G1 Y33.6
G1 X42.1 Y33.6
G1 X37.9 Y33.6
G1 X37.9 Y31.4
G1 X42.1 Y31.4
G1 X42.1 Y33.6
G1 X37.9 Y33.6
G1 X37.9 Y31.4
G1 Z-20.2 F${plunge}
F${feed}
G1 X42.1 Y31.4
G1 Y31.7
G1 X37.9 Y31.7
G1 Y32
G1 X42.1 Y32
G1 Y32.3
G1 X37.9 Y32.3
G1 Y32.6
G1 X42.1 Y32.6
G1 Y32.9
G1 X37.9 Y32.9
G1 Y33.2
G1 X42.1 Y33.2
G1 Y33.5
G1 X37.9 Y33.5
G1 Y33.6
G1 X42.1 Y33.6
G1 X37.9 Y33.6
G1 X37.9 Y31.4
G1 X42.1 Y31.4
G1 X42.1 Y33.6
G1 X37.9 Y33.6
G1 X37.9 Y31.4
G0 Z-17
(pocket R2: 5 x 2.5 mm, 0.2 mm deep, two levels, stepover 0.3 mm)
G0 X39.4 Y22.4
G0 Z-19.5
G1 Z-20.1 F${plunge}
F${feed}
G1 X43.6 Y22.4
G1 Y22.7
G1 X39.4 Y22.7
G1 Y23
G1 X43.6 Y23
G1 Y23.3
G1 X39.4 Y23.3
G1 Y23.6
G1 X43.6 Y23.6
G1 Y23.9
G1 X39.4 Y23.9
G1 Y24.1
G1 X43.6 Y24.1
G1 X39.4 Y24.1
G1 X39.4 Y22.4
G1 X43.6 Y22.4
G1 X43.6 Y24.1
G1 X39.4 Y24.1
G1 X39.4 Y22.4
G1 Z-20.2 F${plunge}
F${feed}
G1 X43.6 Y22.4
G1 Y22.7
G1 X39.4 Y22.7
G1 Y23
G1 X43.6 Y23
G1 Y23.3
G1 X39.4 Y23.3
G1 Y23.6
G1 X43.6 Y23.6
G1 Y23.9
G1 X39.4 Y23.9
G1 Y24.1
G1 X43.6 Y24.1
G1 X39.4 Y24.1
G1 X39.4 Y22.4
G1 X43.6 Y22.4
G1 X43.6 Y24.1
G1 X39.4 Y24.1
G1 X39.4 Y22.4
G0 Z-17
(hole J1: diameter 2.4 mm at X10 Y8 on the plate; helical, 0.25 mm per turn)
G0 X40.8 Y28
G0 Z-19.5
G1 Z-20 F${plunge}
F${feed}
G2 X40.8 Y28 Z-20.25 I-0.8 J0
G2 X40.8 Y28 Z-20.5 I-0.8 J0
G2 X40.8 Y28 Z-20.6 I-0.8 J0
G2 X40.8 Y28 I-0.8 J0
G1 X40 Y28
G0 Z-17
(hole S1: diameter 1.2 mm at X3 Y3 on the plate; helical, 0.25 mm per turn)
G0 X33.2 Y23
G0 Z-19.5
G1 Z-20 F${plunge}
F${feed}
G2 X33.2 Y23 Z-20.25 I-0.2 J0
G2 X33.2 Y23 Z-20.5 I-0.2 J0
G2 X33.2 Y23 Z-20.6 I-0.2 J0
G2 X33.2 Y23 I-0.2 J0
G1 X33 Y23
G0 Z-17
(hole S2: diameter 1.2 mm at X17 Y3 on the plate; helical, 0.25 mm per turn)
G0 X47.2 Y23
G0 Z-19.5
G1 Z-20 F${plunge}
F${feed}
G2 X47.2 Y23 Z-20.25 I-0.2 J0
G2 X47.2 Y23 Z-20.5 I-0.2 J0
G2 X47.2 Y23 Z-20.6 I-0.2 J0
G2 X47.2 Y23 I-0.2 J0
G1 X47 Y23
G0 Z-17
(hole S3: diameter 1.2 mm at X17 Y13 on the plate; helical, 0.25 mm per turn)
G0 X47.2 Y33
G0 Z-19.5
G1 Z-20 F${plunge}
F${feed}
G2 X47.2 Y33 Z-20.25 I-0.2 J0
G2 X47.2 Y33 Z-20.5 I-0.2 J0
G2 X47.2 Y33 Z-20.6 I-0.2 J0
G2 X47.2 Y33 I-0.2 J0
G1 X47 Y33
G0 Z-17
(hole P1: diameter 0.8 mm at X3.5 Y12.5 on the plate; pecked with the tool itself)
G0 X33.5 Y32.5
G0 Z-19.5
G1 Z-20.2 F${plunge}
G0 Z-19.5
G1 Z-20.4 F${plunge}
G0 Z-19.5
G1 Z-20.6 F${plunge}
G0 Z-19.5
G0 Z-17
(hole P2: diameter 1.6 mm at X6.5 Y6 on the plate; helical, 0.25 mm per turn)
G0 X36.9 Y26
G0 Z-19.5
G1 Z-20 F${plunge}
F${feed}
G2 X36.9 Y26 Z-20.25 I-0.4 J0
G2 X36.9 Y26 Z-20.5 I-0.4 J0
G2 X36.9 Y26 Z-20.6 I-0.4 J0
G2 X36.9 Y26 I-0.4 J0
G1 X36.5 Y26
G0 Z-17
M5
G0 Z-12
G0 X0 Y50
M2
