package org.outpost.field.shared

import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import org.outpost.core.DeviceStatus
import org.outpost.core.OutpostException
import org.outpost.core.OutpostInterface

/** What the entry screens show: enrolment, then the PIN. */
data class SessionState(
    val status: DeviceStatus? = null,
    val busy: Boolean = false,
    val error: String? = null,
    /** Seconds to wait after too many wrong PINs. */
    val lockedForSeconds: Long? = null,
)

/**
 * Enrolment (the supervisor's QR code carries the code) and PIN unlock. Calls block: the app
 * runs them on a background dispatcher.
 */
class SessionModel(private val core: OutpostInterface) {
    private val _state = MutableStateFlow(SessionState())
    val state: StateFlow<SessionState> = _state

    fun refresh() {
        val status = attempt { core.status() }
        _state.value = _state.value.copy(status = status.getOrNull() ?: _state.value.status, error = status.exceptionOrNull()?.message)
    }

    /** The QR payload is `outpost:enrol?code=XXXX-XXXX-XXXX`; a typed code works too. */
    fun codeFromScan(scanned: String): String =
        scanned.substringAfter("code=", scanned).substringBefore('&').trim().uppercase()

    fun enrol(serverUrl: String, scannedOrTyped: String, pin: String, pinAgain: String, label: String): Boolean {
        if (pin != pinAgain) {
            _state.value = _state.value.copy(error = "The two PINs differ")
            return false
        }
        _state.value = _state.value.copy(busy = true, error = null)
        val outcome = attempt { core.enrol(serverUrl.trim(), codeFromScan(scannedOrTyped), pin, label, null) }
        _state.value = _state.value.copy(busy = false, error = outcome.exceptionOrNull()?.message)
        refresh()
        return outcome.isSuccess
    }

    fun unlock(pin: String): Boolean {
        return try {
            core.unlock(pin)
            _state.value = SessionState()
            refresh()
            true
        } catch (e: OutpostException.PinLocked) {
            val seconds = Regex("""(\d+) seconds""").find(e.message.orEmpty())?.groupValues?.get(1)?.toLong()
            _state.value = _state.value.copy(error = e.message, lockedForSeconds = seconds)
            false
        } catch (e: OutpostException) {
            _state.value = _state.value.copy(error = e.message, lockedForSeconds = null)
            false
        }
    }

    fun lock() {
        core.lock()
        refresh()
    }
}
