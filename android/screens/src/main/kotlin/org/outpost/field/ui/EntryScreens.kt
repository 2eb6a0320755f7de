package org.outpost.field.ui

import androidx.compose.foundation.text.KeyboardOptions
import androidx.compose.material3.Button
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.collectAsState
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberCoroutineScope
import androidx.compose.runtime.setValue
import androidx.compose.ui.text.input.KeyboardType
import androidx.compose.ui.text.input.PasswordVisualTransformation
import org.outpost.field.shared.SessionModel

/** Enrolment: the server address, the supervisor's code (scanned), and the agent's new PIN. */
@Composable
fun EnrolScreen(session: SessionModel) {
    val state by session.state.collectAsState()
    val scope = rememberCoroutineScope()
    var server by remember { mutableStateOf("https://") }
    var code by remember { mutableStateOf("") }
    var pin by remember { mutableStateOf("") }
    var pinAgain by remember { mutableStateOf("") }
    val scan = rememberQrScanner { code = session.codeFromScan(it) }
    val label = LocalFieldPlatform.current.deviceLabel
    Screen("Enrol this phone", back = null) {
        Text("Ask your supervisor for an enrolment code and scan it.")
        OutlinedTextField(server, { server = it }, label = { Text("Server address") }, singleLine = true)
        OutlinedTextField(code, { code = it }, label = { Text("Enrolment code") }, singleLine = true)
        OutlinedButton(onClick = scan) { Text("Scan the code") }
        PinField("New PIN (4-12 digits)", pin) { pin = it }
        PinField("PIN again", pinAgain) { pinAgain = it }
        ErrorLine(state.error)
        Button(enabled = !state.busy, onClick = { scope.io { session.enrol(server, code, pin, pinAgain, label) } }) {
            Text(if (state.busy) "Enrolling…" else "Enrol")
        }
    }
}

@Composable
fun UnlockScreen(session: SessionModel) {
    val state by session.state.collectAsState()
    val scope = rememberCoroutineScope()
    var pin by remember { mutableStateOf("") }
    Screen("Outpost", back = null) {
        Text("${state.status?.agentName.orEmpty()} · ${state.status?.assignmentName.orEmpty()}")
        PinField("PIN", pin) { pin = it }
        ErrorLine(state.error)
        Button(enabled = pin.length >= 4, onClick = {
            val entered = pin
            pin = ""
            scope.io { session.unlock(entered) }
        }) { Text("Unlock") }
    }
}

@Composable
fun PinField(label: String, value: String, onChange: (String) -> Unit) {
    OutlinedTextField(
        value,
        { v -> onChange(v.filter(Char::isDigit).take(12)) },
        label = { Text(label) },
        singleLine = true,
        visualTransformation = PasswordVisualTransformation(),
        keyboardOptions = KeyboardOptions(keyboardType = KeyboardType.NumberPassword),
    )
}
