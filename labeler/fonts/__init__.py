"""The bundled font subset (see SOURCE.txt and OFL.txt); data only."""
