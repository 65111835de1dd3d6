"""Co-design: layer replication with mixed precision (LRMP) for spatial CIM mapping."""
