"""The zarr episode store, replay sampling and LeRobotDataset import/export."""
