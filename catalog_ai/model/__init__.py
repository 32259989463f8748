"""The model a version is made of: network, hierarchy, calibration, fusion, prototypes, decisions
and thresholds, preprocessing, bundles."""
