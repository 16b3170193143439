"""Produce-back dispatch: couriers for ready parcels, waybills, pickups, labels and tracking."""
