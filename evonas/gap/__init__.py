"""The optimization gap: stand-alone anchors and the fitted corrector that maps supernet scores to stand-alone accuracy."""
