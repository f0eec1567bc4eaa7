"""The ground floor: crash-safe writes, the project's paths and the registry helper. Imports nothing of the project;
every other package may import it."""
