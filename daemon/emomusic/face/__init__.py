"""Face perception: BlazeFace detection, face crops, tracking between detections, expression classifier."""
