"""TFDS builder `chest_xray_pneumonia`; importing it registers the dataset."""

from .chest_xray_pneumonia import ChestXrayPneumonia
from .chest_xray_pneumonia import ChestXrayPneumoniaConfig

__all__ = ['ChestXrayPneumonia', 'ChestXrayPneumoniaConfig']
