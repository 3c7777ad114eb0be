"""Conversions between the schema types and ROS 2 messages."""
