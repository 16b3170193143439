"""Courier adapters (produce-back): electronic waybills, pickup bookings and tracking pushes."""
