(watch-plate-deburr.nc: light pass around every hole edge to remove burrs found by inspection)
(same fixture as watch-plate-mill.nc: lower-left X30 Y20, top face Z-20; 0.8 mm flat end mill)
(parameters: ${spindle} rpm, ${feed} mm/min, ${depth} mm below the top face)
(work zero G54 = the bed's front-left corner: stock Grbl machine space is -travel..0 after homing)
G10 L2 P1 X-80 Y-60 Z0
G21 G90 G17 G94 G54
G0 Z-12
S${spindle} M3
G4 P2
(hole J1)
G0 X40.8 Y28
G0 Z-19.5
G91 G1 Z-0.5 F${feed}
G1 Z-${depth}
G90
G2 X40.8 Y28 I-0.8 J0
G2 X40.8 Y28 I-0.8 J0
G0 Z-17
(hole S1)
G0 X33.2 Y23
G0 Z-19.5
G91 G1 Z-0.5 F${feed}
G1 Z-${depth}
G90
G2 X33.2 Y23 I-0.2 J0
G2 X33.2 Y23 I-0.2 J0
G0 Z-17
(hole S2)
G0 X47.2 Y23
G0 Z-19.5
G91 G1 Z-0.5 F${feed}
G1 Z-${depth}
G90
G2 X47.2 Y23 I-0.2 J0
G2 X47.2 Y23 I-0.2 J0
G0 Z-17
(hole S3)
G0 X47.2 Y33
G0 Z-19.5
G91 G1 Z-0.5 F${feed}
G1 Z-${depth}
G90
G2 X47.2 Y33 I-0.2 J0
G2 X47.2 Y33 I-0.2 J0
G0 Z-17
(hole P2)
G0 X36.9 Y26
G0 Z-19.5
G91 G1 Z-0.5 F${feed}
G1 Z-${depth}
G90
G2 X36.9 Y26 I-0.4 J0
G2 X36.9 Y26 I-0.4 J0
G0 Z-17
M5
G0 Z-12
G0 X0 Y50
M2
